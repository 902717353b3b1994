"""A real Label Studio for the session: started from var/ls-venv on a free loopback port, stopped at the end.

A pytest plugin loaded by tests/conftest.py, so integration tests anywhere (Django ones included) can use it.

The data dir (`var/test-labelstudio`) is kept between runs, so only the very first run pays for LS's migrations
(~45 s); later runs start in ~5 s. Two test sessions at once (two terminals, two workers) must not share one
SQLite file: each session holds a lock on its data dir and falls back to `var/test-labelstudio-2`, `-3`, ...
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from devtools.labelstudio import server as lss
from integrations.labelstudio import client as ls_client
from integrations.labelstudio.client import LabelStudio

DATA_DIR = Path(os.environ.get("ALWEB_TEST_LS_DATA_DIR", lss.REPO_ROOT / "var" / "test-labelstudio"))


@contextlib.contextmanager
def _exclusive_data_dir(base: Path, tries: int = 8) -> Iterator[Path]:
    handles: list[IO[str]] = []
    try:
        for n in range(1, tries + 1):
            candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
            candidate.mkdir(parents=True, exist_ok=True)
            fh = open(candidate / "alweb-test-session.lock", "w")  # noqa: SIM115 - held for the whole session
            handles.append(fh)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            yield candidate
            return
        raise RuntimeError(f"all {tries} test Label Studio data dirs next to {base} are in use")
    finally:
        for handle in handles:
            handle.close()


@pytest.fixture(scope="session")
def ls_server() -> Iterator[lss.LabelStudioServer]:
    """The running server (url, username, password, pat, legacy_token, process)."""
    lss.ensure_venv()
    with _exclusive_data_dir(DATA_DIR) as data_dir:
        # reuse=False: a server left running by a killed session on this dir (we hold its lock now) is replaced.
        server = lss.start(data_dir=data_dir, port=lss.free_port(), reuse=False)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def ls_pat_client(ls_server: lss.LabelStudioServer) -> LabelStudio:
    # Function-scoped: a test may rotate the PAT; a client caches a 5-minute access token from the old one.
    return ls_client.make_client(ls_server.url, ls_server.pat)


@pytest.fixture
def ls_legacy_client(ls_server: lss.LabelStudioServer) -> LabelStudio:
    return ls_client.make_client(ls_server.url, ls_server.legacy_token)


@pytest.fixture
def unique_title(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Project titles that say which test made them (the data dir, and its projects, outlive the run)."""

    def make(suffix: str = "") -> str:
        return f"{request.node.name[:30]} {suffix}".strip()[:50]

    return make


@pytest.fixture
def ls_settings(settings: Any, ls_server: lss.LabelStudioServer) -> Any:
    """Django settings pointing alweb's default Label Studio connection at the session's server (PAT)."""
    settings.LABEL_STUDIO_URL = ls_server.url
    settings.LABEL_STUDIO_API_KEY = ls_server.pat
    # Webhooks registered by tests go nowhere (the discard port refuses at once) unless a test serves alweb.
    settings.ALWEB_BASE_URL = "http://127.0.0.1:9"
    return settings


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Tasks enqueued with .delay run inline (in whatever thread enqueues them, e.g. the live server's)."""
    from alweb.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


@pytest.fixture
def ls_live(ls_settings: Any, live_server: Any, celery_eager: None) -> Any:
    """A live alweb that the session's Label Studio reaches (webhooks, ML backend, media); tasks run inline.

    Needs `django_db(transaction=True)`: the server thread only sees committed rows."""
    ls_settings.ALWEB_BASE_URL = live_server.url
    return live_server
