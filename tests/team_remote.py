"""A team's remotes for end-to-end tests: a bare git repository and a DVC remote on the sshd of tests/sshd.py,
the shrunken project pushed to both, and teammates' clones with their own credentials."""

import hashlib
import json
from pathlib import Path

from sshd import SshServer

from pipeline_repo import Runner, copy_repo

REMOTE = "team"


def team_origin(source: Runner, server: SshServer, root: Path) -> Runner:
    """A copy of `source` (a committed, reproduced project) with the team's remotes, pushed to both: what
    teammates clone. The DVC remote's URL is committed; who logs in, with which key, on which port is each
    clone's own."""
    run = copy_repo(source, root / "origin")
    run("dvc", "remote", "add", "-d", REMOTE, f"ssh://{server.host}{root / 'dvc-store'}")
    add_credentials(run, server)
    run("git", "commit", "-qm", "the team's DVC remote", ".dvc/config")
    run("git", "clone", "-q", "--bare", str(run.root), str(root / "git.git"))
    run("git", "remote", "add", "origin", str(root / "git.git"))
    run("git", "fetch", "-q", "origin")  # origin/main: what teammates receive
    run("dvc", "push")
    return run


def add_credentials(run: Runner, server: SshServer) -> None:
    for key, value in (("user", server.user), ("keyfile", str(server.keyfile)), ("port", str(server.port))):
        run("dvc", "remote", "modify", "--local", REMOTE, key, value)


def clone(origin: Runner, server: SshServer, root: Path, env: dict | None = None) -> Runner:
    """A teammate's clone of the team's git remote, with their own credentials (and `env` added to theirs)."""
    origin("git", "clone", "-q", origin("git", "remote", "get-url", "origin").stdout.strip(), str(root))
    run = Runner(root, {**origin.env, **(env or {})})
    add_credentials(run, server)
    return run


def experiment_table(run: Runner) -> dict[str, dict]:
    """`dvc exp show --json` of HEAD's experiments: name -> its params, metrics and outputs' hashes."""
    return {experiment["name"]: {key: value for key, value in experiment["revs"][0]["data"].items()
                                 if key in ("params", "metrics", "outs")}
            for commit in json.loads(run("dvc", "exp", "show", "--json").stdout)
            for experiment in commit.get("experiments") or []}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
