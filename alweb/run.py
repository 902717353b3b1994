"""`make run`: the whole product on embedded defaults, in one terminal.

Migrates the SQLite database under var/, creates a local admin (printed), starts Label Studio from its own
virtualenv, a Celery worker and beat on the filesystem broker, and the web app on 127.0.0.1:8000. Ctrl-C stops
every child (so do SIGTERM and SIGHUP). A second run reuses var/ and starts in seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("ALWEB_VAR_DIR", ROOT / "var"))
HOST, PORT = "127.0.0.1", int(os.environ.get("ALWEB_PORT", "8000"))


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alweb.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_admin() -> dict[str, str]:
    """Create the local admin once; its password lives in var/admin.json so every run can print it."""
    from django.contrib.auth import get_user_model

    path = VAR / "admin.json"
    creds: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    User = get_user_model()
    if not creds or not User.objects.filter(username=creds["username"]).exists():
        creds = {"username": "admin", "password": secrets.token_urlsafe(12)}
        user = User.objects.filter(username="admin").first() or User(username="admin", email="admin@localhost")
        user.is_staff = user.is_superuser = True
        user.set_password(creds["password"])
        user.save()
        path.write_text(json.dumps(creds))
        path.chmod(0o600)
    return creds


def start(name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(VAR / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
    print(f"  starting {name} (log: var/logs/{name}.log)")
    return subprocess.Popen(
        args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
    )


def stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def stop_on_signals() -> None:
    """`kill` or `docker stop` (SIGTERM) and a closed terminal (SIGHUP) stop every child, as Ctrl-C does: without
    this Python dies at once and leaves the worker, beat, web and Label Studio running. A signal the caller chose to
    ignore (nohup) stays ignored; once stopping has begun, further signals are ignored so the stop completes."""

    def interrupt(signum: int, frame: Any) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, interrupt)


def wait_for_web(web: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Print the URLs only once they answer: runserver takes a few seconds to import the app and bind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None:
        with socket.socket() as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((HOST, PORT)) == 0:
                return
        time.sleep(0.2)
    if web.poll() is not None:
        raise SystemExit(f"alweb: the web app exited (is port {PORT} taken? set ALWEB_PORT); see var/logs/web.log")


def start_label_studio(data_dir: Path | None = None, port: int | None = None) -> Any:
    """Label Studio from its own venv on loopback, unless the environment names another server. A server an earlier
    run left running on the same data dir and port is reused, said so, and left running at the end: this run stops
    only what it started (the returned server's `process` is None when it was reused)."""
    from django.conf import settings

    from devtools.labelstudio import server

    if os.environ.get("LABEL_STUDIO_API_KEY"):
        return None
    data_dir = data_dir or VAR / "labelstudio"
    port = port or int(os.environ.get("ALWEB_LS_PORT", "8080"))
    reused = server.reusable_pid(data_dir=data_dir, port=port)
    if reused is not None:
        print(f"alweb: reusing the Label Studio already running on port {port} (pid {reused}); it keeps running")
    else:
        print("alweb: starting Label Studio (the first start migrates its database: about a minute)")
    ls = server.ensure_running(data_dir=data_dir, port=port)
    # The children (worker, web) read these from the environment; this process from settings.
    os.environ["LABEL_STUDIO_URL"], os.environ["LABEL_STUDIO_API_KEY"] = ls.url, ls.pat
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = ls.url, ls.pat
    return ls


def main() -> None:
    (VAR / "logs").mkdir(parents=True, exist_ok=True)
    _django()
    from django.core.management import call_command

    print("alweb: migrating the embedded database (var/alweb.sqlite3)")
    call_command("migrate", interactive=False, verbosity=0)
    creds = ensure_admin()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    py = sys.executable
    ls = None
    stop_on_signals()
    try:
        ls = start_label_studio()
        print("alweb: seeding the demo projects (first run only)")
        call_command("seed_demo", creds["username"])
        procs["worker"] = start(
            "worker",
            [
                py,
                "-m",
                "celery",
                "-A",
                "alweb",
                "worker",
                "-Q",
                "celery,cpu,io,quality",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
            ],
        )
        procs["beat"] = start(
            "beat",
            [
                py,
                "-m",
                "celery",
                "-A",
                "alweb",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(VAR / "celerybeat-schedule"),
            ],
        )
        procs["web"] = start("web", [py, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"])
        wait_for_web(procs["web"])
        print()
        print(f"  alweb dashboard   http://{HOST}:{PORT}/")
        print(f"  admin             http://{HOST}:{PORT}/admin/   login {creds['username']} / {creds['password']}")
        print(f"  API schema        http://{HOST}:{PORT}/api/schema/swagger/")
        if ls is not None:
            print(f"  Label Studio      {ls.url}/   login {ls.username} / {ls.password}")
        print("\n  Ctrl-C stops everything.")
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        print(f"alweb: {', '.join(dead)} exited; see var/logs/. Stopping the rest.", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nalweb: stopping", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    finally:
        stop_all(procs)
        if ls is not None and ls.process is not None:  # started by this run (a reused one keeps running)
            ls.stop()


if __name__ == "__main__":
    main()
