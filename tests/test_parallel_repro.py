"""scripts/repro_parallel.sh, the README's way to use both cores: two variants' stages at once through the real
`dvc`, in a temporary git repository with a shrunken configuration, on a slice of real MNIST."""

import subprocess

import pytest
import yaml

from pipeline_repo import make_repo, stages_run

# The dvc orchestration itself: CI runs it under one Paddle build (see .ci/run).
pytestmark = pytest.mark.dvc_pipeline

VARIANTS = ("baseline", "focal")


def test_two_variants_at_once_give_every_output_a_complete_lock_and_nothing_left(tmp_path, project_root,
                                                                                 mnist_mirror):
    run = make_repo(tmp_path, project_root, mnist_mirror)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["variants"] = {name: params["variants"][name] for name in VARIANTS}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    result = run("bash", "scripts/repro_parallel.sh", "2")

    expected = {"download", "subset", *(f"{stage}@{name}" for stage in ("train", "evaluate") for name in VARIANTS)}
    assert stages_run(result) == expected
    output = result.stdout + result.stderr
    assert "Unable to acquire lock" not in output and "is busy" not in output, output
    for name in VARIANTS:
        assert (tmp_path / "data" / "models" / f"{name}.pdparams").stat().st_size > 0
        assert (tmp_path / "metrics" / f"{name}.json").exists()
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    listed = run("dvc", "stage", "list", "--name-only").stdout.split()
    assert set(lock["stages"]) == set(listed) == expected
    assert stages_run(run("dvc", "repro")) == set()
    assert subprocess.run(["dvc", "status", "--json"], cwd=tmp_path, env=run.env, capture_output=True,
                          text=True, check=True).stdout.strip() == "{}"
