"""Shared fixtures. Tests run against the real Postgres (alweb.settings.test) and Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from tests.factories import ProjectFactory, UserFactory

# The session's real Label Studio server and clients (ls_server, ls_pat_client, ls_settings, ...).
pytest_plugins = ["tests.labelstudio_server"]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Login failure counts and throttles live in the cache (a per-process memory cache under the test settings):
    one test's failed logins must not lock out the next test's."""
    cache.clear()


@pytest.fixture
def user(db: None) -> Any:
    return UserFactory()


@pytest.fixture
def make_project(db: None) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        return ProjectFactory(**kwargs)

    return make


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Any:
    """Item media written under a per-test folder, through the default (filesystem) storage."""
    root = tmp_path / "media"
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(root)):
        yield root


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Any:
    """A real MLflow store (sqlite + local artifacts) per test."""
    from campaigns.services.training import registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with override_settings(MLFLOW_TRACKING_URI=uri, MLFLOW_ARTIFACT_ROOT=str(tmp_path / "mlartifacts")):
        registry.cache_clear()
        yield uri
    registry.cache_clear()


@pytest.fixture
def celery_worker(tmp_path: Path, settings: Any, django_db_blocker: Any) -> Any:
    """A real worker process on Redis, sharing this test's database, media and MLflow store.

    Tests using it need `django_db(transaction=True)`: the worker only sees committed rows.
    """
    from django.db import connection

    from alweb.celery import app
    from campaigns.services.training import registry
    from tests.worker import make_worker

    worker = make_worker(tmp_path, connection.settings_dict["NAME"])
    app.conf.broker_transport_options = {
        "global_keyprefix": worker.env["CELERY_KEY_PREFIX"],
        "visibility_timeout": int(worker.env["CELERY_VISIBILITY_TIMEOUT"]),
    }
    # Drop pooled broker connections made with the old options; new ones pick up the key prefix.
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    settings.MLFLOW_TRACKING_URI = worker.mlflow_uri
    settings.MLFLOW_ARTIFACT_ROOT = worker.env["MLFLOW_ARTIFACT_ROOT"]
    settings.STORAGES = {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(worker.media_root)},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    registry.cache_clear()
    worker.start()
    yield worker
    worker.stop()
    registry.cache_clear()


@pytest.fixture
def celery_workers(celery_worker: Any) -> Any:
    """Two real worker processes sharing one broker, database, media folder and MLflow store (the first is
    `celery_worker`): what two scoring hosts are to one cycle."""
    second = celery_worker.twin("worker-2")
    second.start()
    yield [celery_worker, second]
    second.stop()


QUEUED_TASKS = ("cycle_train", "cycle_score", "cycle_select", "cycle_sync", "cycle_resync", "project_pull")


@pytest.fixture
def enqueued(monkeypatch: Any) -> list[tuple[str, dict[str, Any]]]:
    """Tasks queued once on-commit callbacks run (a real commit, or django_capture_on_commit_callbacks), recorded
    instead of sent to a broker: [(task name, kwargs)]."""
    from campaigns import tasks

    sent: list[tuple[str, dict[str, Any]]] = []
    for name in QUEUED_TASKS:
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda _n=name, **kw: sent.append((_n, kw)))
    return sent
