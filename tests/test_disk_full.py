"""A full disk while the train stage writes its outputs: a small tmpfs mounted on data/models, holding the
previous weights, leaves no room for the new ones. The stage must fail with one line that says so and what to do, keep the
previous outputs as they were, leave no partial or temporary file, and finish once there is room (it resumes
from the checkpoint saved before the write failed). Needs root (mount); skipped where tmpfs cannot be mounted."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import stage_project
import yaml

MODELS = Path("data/models")
OUTPUTS = (MODELS / "reduced.pdparams", Path("metrics/train/reduced.csv"), Path("metrics/train/reduced.json"))
TMPFS_SIZE = "256k"  # the weights are 168 KB: one copy fits, a second (the new file beside the old) does not


def train(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.train", "--variant", "reduced"], cwd=root,
                          capture_output=True, text=True, timeout=120)


def mount_tmpfs(target: Path) -> str | None:
    """Mount a TMPFS_SIZE tmpfs on `target`; None when done, else why it could not be."""
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(target)],
                            capture_output=True, text=True)
    return None if result.returncode == 0 else f"mount -t tmpfs failed: {result.stderr.strip()}"


@pytest.fixture
def project(tmp_path, project_root, raw_dir) -> Path:
    """A project with its subset built and one finished training of `reduced` (seed 0): the previous outputs."""
    root = stage_project.make_project(tmp_path / "project", project_root, {
        "data.train_limit": 2000, "variants.reduced.epochs": 2})
    shutil.copytree(raw_dir, root / "data" / "raw")
    subprocess.run([sys.executable, "-m", "stages.subset"], cwd=root, check=True, capture_output=True)
    assert train(root).returncode == 0
    return root


def test_full_disk_fails_clearly_and_keeps_the_previous_outputs(project):
    previous = {path: (project / path).read_bytes() for path in OUTPUTS}
    models = project / MODELS
    shutil.move(models, project / "models.before")
    models.mkdir()
    problem = mount_tmpfs(models)
    if problem:
        pytest.skip(f"needs a small tmpfs: {problem}")
    try:
        shutil.copy(project / "models.before" / "reduced.pdparams", models)
        params = yaml.safe_load((project / "params.yaml").read_text())
        (project / "params.yaml").write_text(yaml.safe_dump({**params, "seed": 1}, sort_keys=False))
        failed = train(project)
        assert failed.returncode != 0
        last = failed.stderr.splitlines()[-1]
        assert last.startswith("train: error: no space left on the device") and "Traceback" not in failed.stderr, \
            failed.stderr
        assert {path: (project / path).read_bytes() for path in OUTPUTS} == previous
        assert sorted(p.name for p in models.iterdir()) == ["reduced.pdparams"]
    finally:
        subprocess.run(["umount", str(models)], check=True)
    finished = train(project)
    assert finished.returncode == 0, finished.stderr
    assert "resuming from data/checkpoints/reduced after epoch 2" in finished.stderr
