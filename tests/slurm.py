"""A throwaway one-node SLURM cluster on 127.0.0.1 for the tests of scripts/sweep.py's SLURM backend.

munged, slurmctld and slurmd run as child processes of the tests, on free ports, with every file (munge key
and socket, slurm.conf, state, spool, logs) in one temporary folder, removed when they stop; nothing under
/etc is read or written. Clients find the cluster through SLURM_CONF (`Cluster.env`). The node is this machine
as `slurmd -C` describes it, under the name localhost; cores are allocated one by one (select/cons_tres), so
an array of one-core tasks runs as many at once as the machine has cores.
"""

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from sshd import free_port

DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
INSTALL_HINT = ("install Debian's SLURM and munge (apt-get install -y --no-install-recommends slurmctld slurmd "
                "slurm-client munge), as .ci/run does")
START_TIMEOUT_S = 20
NODE = "localhost"


@dataclasses.dataclass(frozen=True)
class Cluster:
    folder: Path  # every file of the cluster
    conf: Path  # slurm.conf

    @property
    def env(self) -> dict[str, str]:
        """What a SLURM client (sbatch, squeue, scancel) needs in its environment to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}


def node_line() -> str:
    """This machine's hardware as `slurmd -C` reports it, for the node named NODE (memory left out: jobs ask
    for cores only)."""
    described = subprocess.run([DAEMONS["slurmd"], "-C"], capture_output=True, text=True, check=True).stdout
    fields = described.splitlines()[0].split()
    hardware = [field for field in fields if field.split("=")[0] in
                ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")]
    return f"NodeName={NODE} NodeAddr=127.0.0.1 {' '.join(hardware)} State=UNKNOWN"


def write_conf(folder: Path, munge_socket: Path) -> Path:
    for name in ("state", f"spool/{NODE}"):
        (folder / name).mkdir(parents=True)
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=sweeptest",
        f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",  # slurmctld starts only on the host it names
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        # Listen on 127.0.0.1 only, not on every address.
        "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool' / '%n'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",  # no cgroups in a container
        "TaskPlugin=task/affinity",
        # Cores, not whole nodes: the default select/linear would give each task the whole node.
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MailProg=/bin/true",
        "MinJobAge=4",  # a finished job leaves squeue after 4 s
        "KillWait=5",  # a cancelled task has 5 s between SIGTERM and SIGKILL
        "ReturnToService=2",
        "SchedulerParameters=batch_sched_delay=0",  # else sbatch --wait polls every 10 s or more
        node_line(),
        f"PartitionName=test Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    return conf


def start_munged(folder: Path) -> tuple[subprocess.Popen, Path]:
    key, munge_socket = folder / "munge.key", folder / "munge.socket"
    subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
    process = subprocess.Popen(
        [DAEMONS["munged"], "-F", f"--key-file={key}", f"--socket={munge_socket}", f"--pid-file={folder}/munged.pid",
         f"--seed-file={folder}/munge.seed", f"--log-file={folder}/munged.log"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: munge_socket.exists(), process, folder / "munged.log", "munged's socket")
    return process, munge_socket


def wait_for(ready, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the daemon exited {process.returncode}:\n{read(log)}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready within {START_TIMEOUT_S} s:\n{read(log)}")


def read(path: Path) -> str:
    return path.read_text() if path.exists() else f"({path} was not written)"


def node_is_idle(env: dict) -> bool:
    state = subprocess.run(["sinfo", "-h", "-n", NODE, "-o", "%t"], env=env, capture_output=True, text=True)
    return state.returncode == 0 and state.stdout.strip() == "idle"


@contextlib.contextmanager
def running_slurm() -> Iterator[Cluster]:
    """munged, slurmctld and slurmd on 127.0.0.1, the node idle; stopped and their folder removed on exit."""
    for name, path in DAEMONS.items():
        if not Path(path).is_file():
            raise RuntimeError(f"{path} is missing: {INSTALL_HINT}")
    # A short path under /tmp: a Unix socket's path must stay under 108 bytes, and munge wants its socket's
    # folder searchable by everyone (mkdtemp makes it 0700).
    folder = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    folder.chmod(0o755)
    started: list[subprocess.Popen] = []
    try:
        munged, munge_socket = start_munged(folder)
        started.append(munged)
        cluster = Cluster(folder, write_conf(folder, munge_socket))
        env = {**os.environ, **cluster.env}
        for daemon, arguments in (("slurmctld", ["-D"]), ("slurmd", ["-D", "-N", NODE])):
            started.append(subprocess.Popen([DAEMONS[daemon], *arguments], env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: node_is_idle(env), started[-1], folder / "slurmd.log", "the node")
        yield cluster
    finally:
        stop(started, folder)
        shutil.rmtree(folder, ignore_errors=True)


def stop(started: list[subprocess.Popen], folder: Path) -> None:
    """`scontrol shutdown` stops slurmctld and slurmd; whatever is left of what was started is terminated."""
    if len(started) > 1:
        subprocess.run(["scontrol", "shutdown"], env={**os.environ, "SLURM_CONF": str(folder / "slurm.conf")},
                       capture_output=True, timeout=START_TIMEOUT_S)
    for process in reversed(started):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=START_TIMEOUT_S if process is not started[0] else 0.1)
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=START_TIMEOUT_S)
