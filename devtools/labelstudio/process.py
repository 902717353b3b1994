"""Process and port plumbing for the local Label Studio server: port probes, process-group stop, file locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if LS could bind `host:port` *and* would not consider it busy.

    LS probes `localhost:port` with a connect (which may hit ::1) and moves on silently if anything answers,
    so check both that probe and an actual bind (SO_REUSEADDR like Django's runserver, so TIME_WAIT is fine)."""
    with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=0.5):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free right now on `host` (racy by nature; `start` re-checks and fails clearly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def terminate_group(pid: int, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group started with `start_new_session`, then SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not Path(f"/proc/{pid}").exists() or is_zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(5)


def is_zombie(pid: int) -> bool:
    """Dead but not reaped (we are not its parent after a CLI start). The leader turns zombie before its other
    threads have exited and released the listening socket, so wait for those too."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        return state == "Z" and len(list(Path(f"/proc/{pid}/task").iterdir())) <= 1
    except (FileNotFoundError, IndexError):
        return True


def wait_port_free(port: int, host: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_is_free(port, host) and time.monotonic() < deadline:
        time.sleep(0.1)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
