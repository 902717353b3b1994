"""Run a local Label Studio 1.23 server from its own virtualenv: install, start on loopback, tokens, stop.

No Django here: this module is used by `make run` (through `ensure_running`), by the test suite's session
fixture and by the CLI `python -m devtools.labelstudio.server install|start|stop|token|status`.

Label Studio pins its own Django, so it lives in `var/ls-venv`, never in the app's venv. Everything the server
keeps (SQLite DB, SECRET_KEY that signs the JWT tokens, media) is in its data dir; alweb adds three files there:
the credentials (`alweb-credentials.json`), the pid (`alweb-server.pid`) and the log (`alweb-server.log`). A
restart on the same data dir skips migrations and reuses the stored tokens (~5 s instead of ~40 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.labelstudio import process, tokens
from devtools.labelstudio.process import free_port, port_is_free

__all__ = [
    "LabelStudioError",
    "LabelStudioServer",
    "PortBusyError",
    "ensure_running",
    "ensure_venv",
    "free_port",
    "installed_version",
    "port_is_free",
    "start",
    "stop",
]

LS_VERSION = "1.23.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / "var" / "ls-venv"
DEFAULT_DATA_DIR = REPO_ROOT / "var" / "labelstudio"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# LS's login form lower-cases the e-mail before authenticating: a mixed-case username could never log in.
DEFAULT_USERNAME = "admin@alweb.local"
# A first start on a fresh data dir runs Label Studio's migrations: about a minute on a quiet 2-core machine, over two
# on a loaded one (seen: not healthy after 120 s at load 12). The wait ends as soon as /health answers.
START_TIMEOUT_S = 300.0

CREDENTIALS_FILE = "alweb-credentials.json"
PID_FILE = "alweb-server.pid"
LOG_FILE = "alweb-server.log"
LOCK_FILE = "alweb-server.lock"

# The only variables passed through to LS. Its settings read bare names too (HOST, PORT, USERNAME, PASSWORD,
# DEBUG, ...) and `DJANGO_SETTINGS_MODULE` (pytest-django exports alweb's) would make LS load alweb's settings:
# inheriting the caller's environment wholesale leaks all of that into the server.
_PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


class LabelStudioError(RuntimeError):
    """The local Label Studio server could not be installed, started, reached or stopped."""


class PortBusyError(LabelStudioError):
    """The requested port is taken. LS itself would silently move to the next free port: we refuse instead."""


@dataclass
class LabelStudioServer:
    url: str
    username: str
    password: str
    pat: str
    legacy_token: str
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    pid: int | None = None
    log_path: Path | None = field(default=None, repr=False)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop this server (the process we started, or the one recorded in the data dir's pid file)."""
        if self.process is not None:
            process.terminate_group(self.process.pid, timeout=timeout, proc=self.process)
        elif self.pid is not None:
            process.terminate_group(self.pid, timeout=timeout)
        if self.data_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / PID_FILE).unlink()


# ---------------------------------------------------------------------------------------------------- install


def installed_version(venv: Path = DEFAULT_VENV) -> str | None:
    """The label-studio version installed in `venv`, or None.

    Reads the package metadata instead of running `label-studio --version`, which boots Django and asks PyPI
    for the latest release (seconds, and a network call)."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "label-studio").exists() or not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None if out.returncode == 0 else None


def ensure_venv(venv: Path = DEFAULT_VENV, *, version: str = LS_VERSION, python: str = "python3") -> Path:
    """Install label-studio==version into its own venv unless already there; returns the `label-studio` path."""
    venv = Path(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with process.file_lock(venv.parent / f".{venv.name}.lock"):  # two concurrent installs would corrupt the venv
        current = installed_version(venv)
        if current == version:
            return venv / "bin" / "label-studio"
        if current is not None:
            print(f"label-studio {current} found in {venv}, installing {version}", file=sys.stderr)
        if not (venv / "bin" / "python").exists():
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        result = subprocess.run([*pip, f"label-studio=={version}"], check=False)
        if result.returncode != 0 or installed_version(venv) != version:
            raise LabelStudioError(f"pip install label-studio=={version} into {venv} failed (rc {result.returncode})")
    return venv / "bin" / "label-studio"


# ---------------------------------------------------------------------------------------------------- start / stop


def ensure_running(
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    port: int = DEFAULT_PORT,
    venv: Path = DEFAULT_VENV,
    username: str | None = None,
    password: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> LabelStudioServer:
    """Install if needed, then reuse the server already running on this data dir or start one (`make run`)."""
    ensure_venv(venv)
    return start(
        data_dir=data_dir, port=port, venv=venv, username=username, password=password, timeout=timeout, reuse=True
    )


def start(
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    venv: Path = DEFAULT_VENV,
    username: str | None = None,
    password: str | None = None,
    timeout: float = START_TIMEOUT_S,
    reuse: bool = False,
    extra_env: dict[str, str] | None = None,
) -> LabelStudioServer:
    """Start Label Studio on `host:port` (loopback by default) with `data_dir`, and return it with both tokens.

    `reuse=True` returns the server already running on this data dir if it is healthy on the same port;
    otherwise a leftover server on the data dir is stopped first (two servers on one SQLite file corrupt it).
    Username and password default to the ones stored in the data dir, else `DEFAULT_USERNAME` and a random one.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    executable = Path(venv) / "bin" / "label-studio"
    if not executable.exists():
        raise LabelStudioError(f"{executable} not found: run `python -m devtools.labelstudio.server install`")
    with process.file_lock(data_dir / LOCK_FILE):
        stored = tokens.load_credentials(data_dir / CREDENTIALS_FILE)
        username = (username or stored.get("username") or DEFAULT_USERNAME).lower()
        password = password or stored.get("password") or secrets.token_urlsafe(16)
        url = f"http://{host}:{port}"
        env = _server_env(data_dir, host, port, username, password, extra_env)
        reset = _reset_password(executable, env)

        running = _running_pid(data_dir)
        if running is not None:
            if reuse and stored.get("url") == url and tokens.is_healthy(url):
                creds = tokens.obtain_tokens(url, username, password, data_dir / CREDENTIALS_FILE, reset_password=reset)
                return LabelStudioServer(
                    url, username, password, creds.pat, creds.legacy_token, None, data_dir, running
                )
            process.terminate_group(running, timeout=15.0)
            process.wait_port_free(port, host, timeout=10.0)
        if not port_is_free(port, host):
            raise PortBusyError(f"port {port} is busy on {host}/localhost: Label Studio would silently move to another")

        log_path = data_dir / LOG_FILE
        args = [str(executable), "start", "--no-browser", "--internal-host", host, "--port", str(port)]
        args += ["--data-dir", str(data_dir), "--enable-legacy-api-token"]
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        (data_dir / PID_FILE).write_text(str(proc.pid))
        server = LabelStudioServer(url, username, password, "", "", proc, data_dir, proc.pid, log_path)
        try:
            _wait_healthy(url, proc, log_path, timeout)
            creds = tokens.obtain_tokens(url, username, password, data_dir / CREDENTIALS_FILE, reset_password=reset)
        except BaseException:
            server.stop()
            raise
        server.pat, server.legacy_token = creds.pat, creds.legacy_token
        return server


def stop(data_dir: Path = DEFAULT_DATA_DIR, timeout: float = 15.0) -> bool:
    """Stop the server recorded in `data_dir`'s pid file; False if none was running."""
    data_dir = Path(data_dir).resolve()
    pid = _running_pid(data_dir)
    if pid is not None:
        process.terminate_group(pid, timeout=timeout)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PID_FILE).unlink()
    return pid is not None


def _server_env(
    data_dir: Path, host: str, port: int, username: str, password: str, extra: dict[str, str] | None
) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            # Absolute URLs LS builds (ML backend /setup `hostname`, media links) point back at the loopback URL.
            "LABEL_STUDIO_HOST": f"http://{host}:{port}",
            # Credentials through the environment, not argv, so they don't show in `ps`.
            "LABEL_STUDIO_USERNAME": username,
            "LABEL_STUDIO_PASSWORD": password,
            # Webhooks and ML backends pointing at alweb on loopback are blocked (403) by the SSRF guard.
            "SSRF_PROTECTION_ENABLED": "false",
            "ML_BLOCK_LOCAL_IP": "false",
            # Read when the organization is created (first start): both token kinds work.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # Startup otherwise asks PyPI for the latest version and sends analytics: slow or hanging offline.
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def _reset_password(executable: Path, env: dict[str, str]) -> tokens.PasswordReset:
    def reset(username: str, password: str) -> None:
        # LS creates the user only on a fresh data dir: a changed password is never applied on restart.
        subprocess.run(
            [str(executable), "reset_password", "--username", username, "--password", password],
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )

    return reset


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabelStudioError(f"Label Studio exited with rc {proc.returncode}:\n{_log_tail(log_path)}")
        if tokens.is_healthy(url):
            log = log_path.read_text(errors="replace")
            if "is in use" in log:  # LS moved to another port: whatever answered on ours is not this server
                raise PortBusyError(f"port of {url} was taken during startup:\n{_log_tail(log_path)}")
            return
        time.sleep(0.25)
    raise LabelStudioError(f"Label Studio not healthy at {url}/health after {timeout:.0f}s:\n{_log_tail(log_path)}")


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def reusable_pid(
    *, data_dir: Path = DEFAULT_DATA_DIR, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST
) -> int | None:
    """The pid of a healthy server on this data dir and port that `ensure_running` would reuse, or None."""
    data_dir = Path(data_dir).resolve()
    stored = tokens.load_credentials(data_dir / CREDENTIALS_FILE)
    pid = _running_pid(data_dir)
    url = f"http://{host}:{port}"
    return pid if pid is not None and stored.get("url") == url and tokens.is_healthy(url) else None


def _running_pid(data_dir: Path) -> int | None:
    """The pid recorded in the data dir if that process is alive and is a Label Studio (pids get reused)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid if b"label-studio" in cmdline else None


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.labelstudio.server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="install label-studio into its own venv (idempotent)")
    p_start = sub.add_parser("start", help="start (or reuse) the server in the background; prints JSON")
    p_stop = sub.add_parser("stop", help="stop the server recorded in the data dir")
    p_token = sub.add_parser("token", help="print the stored personal access token (or --legacy token)")
    for p in (p_install, p_start):
        p.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    for p in (p_start, p_stop, p_token):
        p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p_start.add_argument("--port", type=int, default=int(os.environ.get("ALWEB_LS_PORT", DEFAULT_PORT)))
    p_start.add_argument("--username")
    p_start.add_argument("--password")
    p_start.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the server")
    p_token.add_argument("--legacy", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "install":
        print(ensure_venv(args.venv))
        return 0
    if args.command == "stop":
        print("stopped" if stop(args.data_dir) else "not running")
        return 0
    if args.command == "token":
        creds = tokens.load_credentials(Path(args.data_dir).resolve() / CREDENTIALS_FILE)
        token = creds.get("legacy_token" if args.legacy else "pat")
        if not token:
            print("no token stored: start the server first", file=sys.stderr)
            return 1
        print(token)
        return 0

    ensure_venv(args.venv)
    t0 = time.monotonic()
    server = start(
        data_dir=args.data_dir,
        port=args.port,
        venv=args.venv,
        username=args.username,
        password=args.password,
        reuse=True,
    )
    info: dict[str, object] = {
        "url": server.url,
        "username": server.username,
        "password": server.password,
        "pid": server.pid,
    }
    info |= {"data_dir": str(server.data_dir), "started_in_s": round(time.monotonic() - t0, 1)}
    print(json.dumps(info), flush=True)
    if args.foreground:
        try:
            while server.process is None or server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
