"""A throwaway OpenSSH server on 127.0.0.1 for the tests of DVC's SSH remote.

Everything it needs lives in one folder: its host key, the client's key pair, authorized_keys, sshd_config,
its pid file and its log; nothing is read from or written to ~/.ssh. It accepts only the client key (no
password, no keyboard-interactive), for the user running the tests, and no agent or port forwarding.
"""

import contextlib
import dataclasses
import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

SSHD = "/usr/sbin/sshd"  # Debian's openssh-server; .ci/run installs it when missing
# sshd refuses to start without its privilege separation directory, which Debian's service unit creates at
# boot; a container that never started the service lacks it.
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT_S = 10
INSTALL_HINT = "install Debian's openssh-server (apt-get install -y openssh-server), as .ci/run does"


@dataclasses.dataclass(frozen=True)
class SshServer:
    """Where a client connects and with what: what `dvc remote modify --local` is given."""
    host: str
    port: int
    user: str
    keyfile: Path  # the client's private key
    folder: Path  # the server's own files


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(folder: Path, port: int) -> Path:
    host_key, client_key = folder / "host_ed25519", folder / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dvc remote test", "-f", str(key)],
                       check=True, capture_output=True)
    shutil.copy(client_key.with_suffix(".pub"), folder / "authorized_keys")
    config = folder / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {host_key}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"AllowUsers {getpass.getuser()}",
        "PermitRootLogin prohibit-password",  # root may log in, with a key only (CI runs as root)
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # authorized_keys sits under /tmp, which is world-writable: StrictModes refuses any such directory on
        # its path (sticky bit or not).
        "StrictModes no",
        "AllowAgentForwarding no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",  # DVC's SSH remote moves files over SFTP
        "",
    ]))
    return config


def wait_until_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited {process.returncode} before listening:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S} s:\n{log.read_text()}")


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[SshServer]:
    """sshd on a free port of 127.0.0.1 with its files in `folder`, stopped (and its files left) on exit."""
    if not Path(SSHD).is_file():
        raise RuntimeError(f"{SSHD} is missing: {INSTALL_HINT}")
    made_privsep = not PRIVSEP_DIR.exists()
    if made_privsep:
        PRIVSEP_DIR.mkdir(mode=0o755)
    port = free_port()
    config, log = write_config(folder, port), folder / "sshd.log"
    # -D: stay in the foreground, so this process owns it; -e/-E: the log in the folder, not syslog.
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-E", str(log)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port, process, log)
        yield SshServer("127.0.0.1", port, getpass.getuser(), folder / "client_ed25519", folder)
    finally:
        process.terminate()
        process.wait(timeout=START_TIMEOUT_S)
        if made_privsep:  # left when another sshd has started since and holds it
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()
