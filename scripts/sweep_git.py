"""What git knows about a sweep: its commit, which of its experiments exist here or on the team's git remote,
and whether the workspace is one that workers elsewhere can reproduce (clean, its commit pushed)."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SweepError(RuntimeError):
    """A sweep cannot start or finish; the message names the problem and what to do."""


def run(*args: str, cwd: Path = ROOT, capture: bool = False) -> str:
    """Runs a command (echoed on stderr unless captured); a failure raises SweepError with its output."""
    if not capture:
        print("+", shlex.join(args), file=sys.stderr, flush=True)
    result = subprocess.run(args, cwd=cwd, text=True, capture_output=capture)
    if result.returncode != 0:
        output = f":\n{result.stdout}{result.stderr}" if capture else " (its output is above)"
        raise SweepError(f"`{shlex.join(args)}` exited {result.returncode}{output}")
    return result.stdout if capture else ""


def this_python_first_on_path() -> None:
    """Puts the directory of the Python running this script first on PATH, as activating its environment would:
    the `dvc` this script and DVC's queue workers run, and the stages' `python`, are then that environment's,
    also when it was started as `.venv/bin/python scripts/...` without activating it."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def head(cwd: Path = ROOT) -> str:
    return run("git", "rev-parse", "HEAD", cwd=cwd, capture=True).strip()


def experiment_refs_prefix(commit: str) -> str:
    """Where DVC keeps the experiments based on `commit` (dvc's ExpRefInfo: refs/exps/<2 hex>/<38 hex>/<name>)."""
    return f"refs/exps/{commit[:2]}/{commit[2:]}/"


def local_experiments(cwd: Path = ROOT) -> set[str]:
    """Names of the experiments of HEAD in this repository."""
    prefix = experiment_refs_prefix(head(cwd))
    refs = run("git", "for-each-ref", "--format=%(refname)", prefix, cwd=cwd, capture=True).split()
    return {ref.removeprefix(prefix) for ref in refs}


def pushed_experiments(git_remote: str, cwd: Path = ROOT) -> set[str]:
    """Names of the experiments of HEAD on the git remote (`dvc exp push` sends their refs there)."""
    prefix = experiment_refs_prefix(head(cwd))
    listed = run("git", "ls-remote", git_remote, f"{prefix}*", cwd=cwd, capture=True)
    return {line.split()[1].removeprefix(prefix) for line in listed.splitlines()}


def check_reproducible_elsewhere(git_remote: str, cwd: Path = ROOT) -> str:
    """HEAD, once checked that a clone of the git remote gets exactly this workspace: nothing uncommitted (DVC
    outputs are git-ignored) and HEAD on one of the remote's branches."""
    dirty = run("git", "status", "--porcelain", cwd=cwd, capture=True)
    if dirty:
        raise SweepError(f"the workspace has changes that workers would not get:\n{dirty}commit them (or stash "
                         "them) and push, then submit again")
    commit = head(cwd)
    run("git", "fetch", "-q", git_remote, cwd=cwd, capture=True)
    containing = run("git", "branch", "-r", "--contains", commit, "--list", f"{git_remote}/*", cwd=cwd, capture=True)
    if not containing.strip():
        raise SweepError(f"HEAD ({commit[:12]}) is on no branch of the git remote {git_remote!r}, so workers cannot "
                         f"check it out: `git push {git_remote}` first, then submit again")
    return commit
