"""The local Label Studio server: loopback only, both tokens, busy ports refused, restart reuses everything."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from devtools.labelstudio import server as lss
from devtools.labelstudio import tokens


def _listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state for `port`, read from /proc (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.integration
def test_server_listens_on_loopback_only(ls_server: lss.LabelStudioServer) -> None:
    port = int(ls_server.url.rsplit(":", 1)[1])
    assert ls_server.url.startswith("http://127.0.0.1:")
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex; not 0.0.0.0 nor ::
    assert requests.get(f"{ls_server.url}/health", timeout=5).json() == {"status": "UP"}


@pytest.mark.integration
def test_both_tokens_authenticate(ls_server: lss.LabelStudioServer) -> None:
    assert ls_server.pat.count(".") == 2  # a JWT
    assert tokens.pat_is_valid(ls_server.url, ls_server.pat)
    assert tokens.legacy_token_is_valid(ls_server.url, ls_server.legacy_token)
    assert not tokens.legacy_token_is_valid(ls_server.url, "0" * 40)


@pytest.mark.integration
def test_start_with_reuse_returns_the_running_server(ls_server: lss.LabelStudioServer) -> None:
    assert ls_server.data_dir is not None
    port = int(ls_server.url.rsplit(":", 1)[1])
    t0 = time.monotonic()
    again = lss.start(data_dir=ls_server.data_dir, port=port, reuse=True)
    assert time.monotonic() - t0 < 5
    assert (again.pid, again.pat, again.legacy_token) == (ls_server.pid, ls_server.pat, ls_server.legacy_token)
    assert again.process is None  # not ours to wait on


@pytest.mark.integration
def test_lost_credentials_file_revokes_and_replaces_the_pat(ls_server: lss.LabelStudioServer, tmp_path: Path) -> None:
    """LS allows one PAT per user and stores it without signature: a lost one is revoked and a new one made."""
    assert ls_server.data_dir is not None
    old_pat = ls_server.pat
    creds = tokens.obtain_tokens(ls_server.url, ls_server.username, ls_server.password, tmp_path / "creds.json")
    try:
        assert creds.pat != old_pat
        assert tokens.pat_is_valid(ls_server.url, creds.pat)
        assert not tokens.pat_is_valid(ls_server.url, old_pat)
        assert creds.legacy_token == ls_server.legacy_token
        assert (tmp_path / "creds.json").stat().st_mode & 0o077 == 0
    finally:
        # Keep the session's server usable: its stored credentials and the fixture object get the new PAT.
        stored = tokens.load_credentials(ls_server.data_dir / lss.CREDENTIALS_FILE)
        tokens.save_credentials(ls_server.data_dir / lss.CREDENTIALS_FILE, {**stored, "pat": creds.pat})
        ls_server.pat = creds.pat


@pytest.mark.integration
def test_restart_on_the_same_data_dir_is_fast_and_keeps_tokens(ls_server: lss.LabelStudioServer) -> None:
    assert ls_server.data_dir is not None
    port = int(ls_server.url.rsplit(":", 1)[1])
    ls_server.stop()
    assert not tokens.is_healthy(ls_server.url)
    t0 = time.monotonic()
    restarted = lss.start(data_dir=ls_server.data_dir, port=port)
    elapsed = time.monotonic() - t0
    # The session fixture stops whatever process its object points at: hand it the new one.
    ls_server.process, ls_server.pid = restarted.process, restarted.pid
    assert (restarted.pat, restarted.legacy_token) == (ls_server.pat, ls_server.legacy_token)
    assert elapsed < 30, f"restart took {elapsed:.1f}s"


def test_busy_port_is_refused_before_starting(tmp_path: Path) -> None:
    """LS would silently move to the next port; start() fails clearly instead (and launches nothing)."""
    if not (lss.DEFAULT_VENV / "bin" / "label-studio").exists():
        pytest.skip("Label Studio venv not installed")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not lss.port_is_free(port)
        with pytest.raises(lss.PortBusyError, match=str(port)):
            lss.start(data_dir=tmp_path / "ls", port=port, timeout=5)
    assert not (tmp_path / "ls" / lss.PID_FILE).exists()
    assert lss.port_is_free(port)


def test_missing_venv_is_reported(tmp_path: Path) -> None:
    assert lss.installed_version(tmp_path / "nope") is None
    with pytest.raises(lss.LabelStudioError, match="install"):
        lss.start(data_dir=tmp_path / "ls", port=lss.free_port(), venv=tmp_path / "nope")
