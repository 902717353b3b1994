"""Test settings: real Postgres (DATABASE_URL, default the local server), fast password hashing."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import DATABASES, LABEL_STUDIO_URL, env

DATABASES["default"] = env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/alweb")
DATABASES["default"]["ATOMIC_REQUESTS"] = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
# The made-up Label Studio hosts the tests name (never reached: a test that calls one fakes the client).
# A worker process a test starts may be told of a real server it must allow (ALWEB_LS_ALLOWED_URLS in its env).
ALWEB_LS_ALLOWED_URLS = [
    *env.list("ALWEB_LS_ALLOWED_URLS", default=[]),
    LABEL_STUDIO_URL,
    "http://ls.example",
    "http://ls.example:8080",
    "https://ls.example",
]
# Each test process its own cache, whatever ALWEB_CACHE_URL says: tests clear it between tests (lockouts and
# throttles must not leak from one test to the next) and must never clear a Redis others use.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# axes.W001 warns that a memory cache is per process: true, and fine for one test process.
SILENCED_SYSTEM_CHECKS = ["axes.W001"]
