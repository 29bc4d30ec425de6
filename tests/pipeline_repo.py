"""A temporary git + DVC repository of the project, for tests that run the real `dvc` commands.

The project's stages, params.yaml and dvc.yaml are copied into it with a shrunken configuration (a slice of
real MNIST, one epoch, two gammas); `Runner` runs commands in it with this test environment's Python and dvc.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# data/.gitignore is where `dvc add`/`dvc repro` list the outputs they track, once the project commits one.
PROJECT_FILES = ("stages", "scripts", "params.yaml", "dvc.yaml", "recipe.yaml", ".dvcignore", ".gitignore",
                 "data/.gitignore", "pyproject.toml")
TEST_IMAGES = 500


def shrink(params: dict) -> dict:
    """The default configuration on 2000 training and 500 test images, one epoch (two for cRT's two phases),
    two gammas."""
    params["data"].update(train_limit=2000, test_limit=TEST_IMAGES)
    for variant in params["variants"].values():
        if "epochs" in variant:
            variant["epochs"] = 2 if variant["loss"] == "crt" else 1
    params["losses"]["focal_curriculum"].update(gammas=[0.5, 2], epochs_per_gamma=1)
    return params


def make_repo(root: Path, project_root: Path, mnist_mirror: Path) -> "Runner":
    """Copy the project into `root` with shrunken params, as a committed git + DVC repository."""
    for name in PROJECT_FILES:
        source, target = project_root / name, root / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists() or name != "data/.gitignore":  # the one optional file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    params = shrink(yaml.safe_load((project_root / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "MNIST_MIRROR": str(mnist_mirror),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = Runner(root, env)
    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.name", "pipeline test")
    run("git", "config", "user.email", "test@example.invalid")
    run("dvc", "init", "-q")
    shutil.copy(project_root / ".dvc" / "config", root / ".dvc" / "config")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "project")
    return run


def copy_repo(source: "Runner", root: Path) -> "Runner":
    """A copy of the repository (git, DVC cache, workspace) at `root`, to change without touching `source`."""
    shutil.copytree(source.root, root, symlinks=True)
    return Runner(root, source.env)


class Runner:
    """Runs commands in the test repository; a non-zero exit fails the test with the command's output."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env

    def __call__(self, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        if expect_ok and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def restore(self) -> None:
        """Back to the last commit: params, lock file, metrics, the DVC-tracked data, and no untracked file."""
        self("git", "reset", "-q", "--hard")
        self("git", "clean", "-qfd")
        self("dvc", "checkout", "-q", "--force")

    def metrics(self, name: str) -> dict:
        return json.loads((self.root / "metrics" / f"{name}.json").read_text())


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))
