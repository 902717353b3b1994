"""Production: refuses to start without a real secret key; secure cookies and HSTS."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, env

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if len(SECRET_KEY) < 32 or SECRET_KEY.startswith("insecure"):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a random value of at least 32 characters.")
DEBUG = False
# Persistent database connections (one per gunicorn worker and per Celery process), checked before each reuse so a
# dropped one is replaced: with a new connection per request, bench/load.py measured the progress poll's median at
# 130 ms instead of 89 ms, and the slider's preview at 270 instead of 200, on a loaded 2-core host. 0 opens one per
# request again.
# (New dicts: base's own stay as they are for the settings modules that import them.)
DATABASES = {
    **DATABASES,
    "default": {
        **DATABASES["default"],
        "CONN_MAX_AGE": env.int("DATABASE_CONN_MAX_AGE", default=60),
        "CONN_HEALTH_CHECKS": True,
    },
}
# Redis, shared by every web worker: a per-process cache would give each worker its own login failure counts and
# throttles (3 gunicorn workers: three times the guesses). The compose file's Redis by default.
CACHES = {"default": env.cache("ALWEB_CACHE_URL", default="redis://redis:6379/1")}
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# HTTPS only by default: plain HTTP is redirected and browsers remember (HSTS, a year) to never try it again.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)
SECURE_CONTENT_TYPE_NOSNIFF = True
# X-Forwarded-Proto says "this came over HTTPS" only when a proxy in front of alweb sets it and strips the client's:
# trusted on request (DJANGO_SECURE_PROXY_SSL_HEADER=true), never by default, since a client reaching gunicorn
# directly could send it itself.
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
