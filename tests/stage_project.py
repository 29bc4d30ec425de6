"""A throwaway copy of the project (stages/ and params.yaml) in which one stage runs as a real subprocess.

For tests of how a stage fails: its exit status, its message on stderr and the files it leaves behind.
"""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml


def make_project(root: Path, project_root: Path, changes: dict | None = None) -> Path:
    """Copy stages/ and params.yaml into `root`, with the dotted keys in `changes` set in params.yaml."""
    shutil.copytree(project_root / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(with_keys(params, changes or {}), sort_keys=False))
    return root


def with_keys(params: dict, changes: dict) -> dict:
    """A copy of params with each dotted key of `changes` set to its value."""
    changed = copy.deepcopy(params)
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = changed
        for part in parents:
            target = target[part]
        target[last] = value
    return changed


def run_stage(root: Path, *args: str, env: dict | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """`python -m stages.<args>` in `root` with this interpreter; `env` is added to the current environment."""
    return subprocess.run([sys.executable, "-m", *args], cwd=root, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout_s)


def project_files(root: Path) -> dict[str, bytes | None]:
    """Every file (-> its content) and directory (-> None) under `root`, but stages/ and Python's caches."""
    tree = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == "stages" or "__pycache__" in relative.parts:
            continue
        tree[str(relative)] = path.read_bytes() if path.is_file() else None
    return tree
