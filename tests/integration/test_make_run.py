"""`make run`'s process (python -m alweb.run) as a user meets it: it comes up with the web app answering, Ctrl-C
stops every child it started, a second run reuses what the first made (no second seeding), and `kill` (SIGTERM)
stops the children too.

It runs on its own var dir with the embedded defaults (SQLite, filesystem broker, MLflow on SQLite) and the tests'
Label Studio server, named through the environment as a user would name their own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.labelstudio import server as lss
from devtools.labelstudio.process import is_zombie

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops everything."
# What the test environment sets for the test settings; `make run` is the local settings on embedded defaults.
DROP = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "MLFLOW_TRACKING_URI", "ALWEB_MEDIA_ROOT")


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not is_zombie(pid)


class Run:
    """One `python -m alweb.run`, its output collected until it is ready."""

    def __init__(self, var: Path, ls: lss.LabelStudioServer) -> None:
        self.port = lss.free_port()
        env = {k: v for k, v in os.environ.items() if k not in DROP}
        env |= {
            "ALWEB_VAR_DIR": str(var),
            "ALWEB_PORT": str(self.port),
            "LABEL_STUDIO_URL": ls.url,
            "LABEL_STUDIO_API_KEY": ls.pat,
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alweb.run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # A terminal's Ctrl-C reaches a foreground process; a test run started in the background would pass on
            # an ignored SIGINT instead.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.children: list[int] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY in line:
                return
        raise AssertionError("alweb.run exited before it was ready:\n" + self.output)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: signal.Signals) -> list[int]:
        """Send `sig`, wait for the exit; returns the children that were running before."""
        children = self.children = children_of(self.proc.pid)
        self.proc.send_signal(sig)
        rest, _ = self.proc.communicate(timeout=60)
        self.lines.append(rest)
        return children


@pytest.fixture
def runs(ls_server: lss.LabelStudioServer, tmp_path: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:  # a failed assertion must not leave a worker behind
        running = run.proc.poll() is None
        for pid in {*run.children, *(children_of(run.proc.pid) if running else [])}:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # each child leads its own process group
        if running:
            run.proc.kill()
            run.proc.wait(10)


def test_make_run_comes_up_stops_on_ctrl_c_and_on_kill_and_reuses_its_state(
    ls_server: lss.LabelStudioServer, tmp_path: Path, runs: list[Run]
) -> None:
    var = tmp_path / "var"
    first = Run(var, ls_server)
    runs.append(first)
    assert "created Digits (demo)" in first.output and "created Support topics (demo)" in first.output
    assert requests.get(f"http://127.0.0.1:{first.port}/accounts/login/", timeout=30).status_code == 200
    children = first.stop(signal.SIGINT)
    assert len(children) == 3, first.output  # worker, beat, web (Label Studio is the tests')
    assert first.proc.returncode == 0 and "alweb: stopping" in first.output, first.output
    deadline = time.monotonic() + 20  # the worker's pool processes exit after their parent
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)], "Ctrl-C left children running"

    second = Run(var, ls_server)
    runs.append(second)
    assert "created Digits" not in second.output, second.output  # seeded once, reused
    assert requests.get(f"http://127.0.0.1:{second.port}/accounts/login/", timeout=30).status_code == 200
    children = second.stop(signal.SIGTERM)
    assert len(children) == 3 and second.proc.returncode == 0, second.output
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)], "SIGTERM left children running"
