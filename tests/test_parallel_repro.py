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


# DVC rewrites .dvc/tmp/rwlock in place; a run killed in the middle of that write leaves it empty or cut short, and
# every DVC command after it then fails "Unable to read RWLock-file ... JSON structure is corrupted"
# (treeverse/dvc#7615). What test_chaos.py's kills hit now and then, set up here on purpose.
CUT_RWLOCK = '{"read": {"data/train_sets/subset.npz": [{"pid": 4'


@pytest.fixture
def one_variant(tmp_path, project_root, mnist_mirror):
    run = make_repo(tmp_path, project_root, mnist_mirror)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["variants"] = {"reduced": params["variants"]["reduced"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / ".dvc" / "tmp").mkdir(exist_ok=True)
    (tmp_path / ".dvc" / "tmp" / "rwlock").write_text(CUT_RWLOCK)
    return run


def test_a_lock_file_cut_short_by_a_killed_run_is_removed_and_the_run_completes(one_variant):
    result = one_variant("bash", "scripts/repro_parallel.sh", "2")

    assert "DVC's lock file .dvc/tmp/rwlock was cut short" in result.stderr, result.stderr
    assert stages_run(result) == {"download", "subset", "train@reduced", "evaluate@reduced"}
    assert one_variant("dvc", "status", "--json").stdout.strip() == "{}"


def test_a_lock_file_cut_short_is_kept_while_a_dvc_process_runs_in_the_repository(one_variant):
    # A real process, named dvc, working in the repository: another user's `dvc repro` whose locks the file held.
    other = subprocess.Popen(["bash", "-c", "exec -a dvc sleep 60"], cwd=one_variant.root)
    try:
        result = one_variant("bash", "scripts/repro_parallel.sh", "2", expect_ok=False)
    finally:
        other.kill()
        other.wait()

    assert result.returncode != 0
    assert f"(PID {other.pid})" in result.stderr and "run scripts/repro_parallel.sh again" in result.stderr, \
        result.stderr
    assert (one_variant.root / ".dvc" / "tmp" / "rwlock").read_text() == CUT_RWLOCK
    assert not (one_variant.root / "data" / "models" / "reduced.pdparams").exists()


CUT_LOCKS = {"emptied": b"",
             "cut-in-a-key": b"schema: '2.0'\nstages:\n  download:\n    cmd: python -m stages.download\n    de"}


@pytest.mark.parametrize("cut", CUT_LOCKS.values(), ids=CUT_LOCKS.keys())
def test_a_dvc_lock_cut_short_by_a_killed_run_gives_way_to_the_committed_one(tmp_path, project_root, mnist_mirror,
                                                                            cut):
    # DVC rewrites dvc.lock in place: a kill in that write leaves it emptied or cut mid-line, and DVC then refuses
    # it ("validation failed", "is invalid").
    run = make_repo(tmp_path, project_root, mnist_mirror)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["variants"] = {"reduced": params["variants"]["reduced"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("bash", "scripts/repro_parallel.sh", "2")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "a run")
    committed = (tmp_path / "dvc.lock").read_bytes()
    (tmp_path / "dvc.lock").write_bytes(cut)

    result = run("bash", "scripts/repro_parallel.sh", "2")

    assert "dvc.lock was cut short by a killed run" in result.stderr, result.stderr
    assert stages_run(result) == set(), "the committed dvc.lock matches the workspace: nothing to run"
    assert (tmp_path / "dvc.lock").read_bytes() == committed
    assert (tmp_path / ".dvc" / "tmp" / "dvc.lock.cut-short").read_bytes() == cut
    assert run("git", "status", "--porcelain").stdout == ""
