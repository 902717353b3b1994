"""Local mode and `make run`: embedded defaults on one machine, for trying alweb out and developing it.

DEBUG is off unless DJANGO_DEBUG=true: a debug page lists every URL pattern, the settings and the environment to
whoever triggers an error. The secret key (it signs sessions, CSRF tokens and the media URLs Label Studio loads) is
random, made once per install under var/ and kept there, so nobody can forge a media URL from a default in the
source, and a restart keeps everyone logged in.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import VAR_DIR, env


def local_secret_key(var_dir: Path) -> str:
    """The install's key from var/secret_key, created on first use, owner-only. Written whole to a temporary file
    and linked into place (link fails if the name exists): the web process and the workers starting together all
    read the one key that got there first, never a half-written one."""
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=var_dir, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key: delete it and start again")
    return key


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or local_secret_key(VAR_DIR)
# Local mode serves from one process (runserver): the memory cache is shared by every request (axes.W001 warns
# about several processes, as in production, where the cache is Redis).
SILENCED_SYSTEM_CHECKS = ["axes.W001"]
