"""Test settings: real Postgres (DATABASE_URL, default the local server), fast password hashing."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import DATABASES, env

DATABASES["default"] = env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/alweb")
DATABASES["default"]["ATOMIC_REQUESTS"] = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
