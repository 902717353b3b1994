"""Production keeps database connections between requests (bench/load.py: a new connection per request made the
progress poll's median a third slower under load), checked before reuse, and leaves base's settings untouched."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from alweb.settings import base


def production(monkeypatch: Any, **env: str) -> Any:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("alweb.settings.production", None)
    try:
        return importlib.import_module("alweb.settings.production")
    finally:
        sys.modules.pop("alweb.settings.production", None)


def test_connections_persist_with_health_checks_unless_set_to_zero(monkeypatch: Any) -> None:
    monkeypatch.delenv("DATABASE_CONN_MAX_AGE", raising=False)
    before = dict(base.DATABASES["default"])
    default = production(monkeypatch).DATABASES["default"]
    assert (default["CONN_MAX_AGE"], default["CONN_HEALTH_CHECKS"]) == (60, True)
    assert production(monkeypatch, DATABASE_CONN_MAX_AGE="0").DATABASES["default"]["CONN_MAX_AGE"] == 0
    assert base.DATABASES["default"] == before  # the test settings' own connection is not changed by the import
