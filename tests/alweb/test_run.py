"""`make run`'s launcher around Label Studio: a server left running by an earlier run is reused, said so, and left
running; only a server this run started is stopped (issue 16, item 9)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import pytest

from alweb.run import start_label_studio

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_running_label_studio_is_reused_and_named_not_restarted(
    ls_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Any
) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    # start_label_studio exports the server to the environment for its children: put it back after the test.
    monkeypatch.setenv("LABEL_STUDIO_URL", os.environ.get("LABEL_STUDIO_URL", ""))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    port = urlsplit(ls_server.url).port
    assert port is not None
    ls = start_label_studio(data_dir=ls_server.data_dir, port=port)
    out = capsys.readouterr().out
    assert f"reusing the Label Studio already running on port {port} (pid {ls_server.pid})" in out, out
    assert "starting Label Studio" not in out
    # Not started by this run: the launcher's cleanup (which stops only a server with a process) leaves it alone.
    assert ls.process is None and ls.pid == ls_server.pid and ls.url == ls_server.url
