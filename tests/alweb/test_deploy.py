"""The Dockerfile and compose file can't be built here (no Docker engine): check what can be checked by reading."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def compose_commands() -> list[tuple[str, list[str]]]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return [(name, svc["command"]) for name, svc in doc["services"].items() if "command" in svc]


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "Dockerfile has no exec-form CMD"
    return list(yaml.safe_load(match.group(1)))


def check_entry_point(argv: list[str], *, routed_by_env: frozenset[str] = frozenset()) -> None:
    """`routed_by_env`: queues that tasks go to only when the environment routes them there (the gpu queue, by
    ALWEB_QUEUE_TRAINING / ALWEB_QUEUE_SCORING: test_the_gpu_queue_takes_training_and_scoring_when_routed)."""
    exe = argv[0]
    assert (VENV_BIN / exe).exists() or shutil.which(exe), f"{exe} is not installed by requirements.txt"
    if exe == "gunicorn":
        module, attr = argv[1].split(":")
        assert hasattr(importlib.import_module(module), attr)
    elif exe == "celery":
        app = argv[argv.index("-A") + 1]
        assert importlib.import_module(app).celery_app is not None
        queues = argv[argv.index("-Q") + 1].split(",") if "-Q" in argv else []
        from django.conf import settings

        routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
        assert set(queues) <= routed | {settings.CELERY_TASK_DEFAULT_QUEUE} | routed_by_env, queues
    elif exe == "python" and argv[1] == "manage.py":
        from django.core.management import get_commands

        assert argv[2] in get_commands(), f"no manage.py command {argv[2]}"
    elif exe == "mlflow":
        assert argv[1] == "server"
        out = subprocess.run([str(VENV_BIN / "mlflow"), "server", "--help"], capture_output=True, text=True)
        for flag in (a for a in argv[2:] if a.startswith("--")):
            assert flag in out.stdout, f"mlflow server has no {flag}"


@pytest.mark.parametrize(("service", "argv"), compose_commands())
def test_every_compose_command_names_an_existing_entry_point(service: str, argv: list[str]) -> None:
    check_entry_point(argv, routed_by_env=frozenset({"gpu"}) if service == "worker-gpu" else frozenset())


def test_dockerfile_cmd_names_an_existing_entry_point() -> None:
    check_entry_point(dockerfile_cmd())


def test_compose_covers_the_production_topology() -> None:
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    assert {"postgres", "redis", "label-studio", "mlflow", "web", "worker-cpu", "worker-io", "beat"} <= services


def test_a_gpu_worker_takes_the_gpu_queue_only_when_asked_for() -> None:
    """The gpu queue's worker: behind the "gpu" profile (a CPU host's `docker compose up` never starts it), on the
    CUDA build of torch (the Dockerfile's TORCH_INDEX), reserving an NVIDIA device, refusing to run on the CPU, and
    with the same database, broker and MLflow as every other process."""
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gpu, cpu = doc["services"]["worker-gpu"], doc["services"]["worker-cpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu
    assert gpu["command"][gpu["command"].index("-Q") + 1] == "gpu"
    assert "whl/cu" in gpu["build"]["args"]["TORCH_INDEX"] and gpu["image"] != cpu["image"]
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in (ROOT / "Dockerfile").read_text()
    assert '"$TORCH_INDEX"' in (ROOT / "Dockerfile").read_text()
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["environment"] == {**cpu["environment"], "ALWEB_DEVICE": "cuda"}


def test_the_gpu_queue_takes_training_and_scoring_when_routed() -> None:
    """With ALWEB_QUEUE_TRAINING=gpu and ALWEB_QUEUE_SCORING=gpu (.env, read by every process), the tasks that train
    and score go to the queue the gpu worker consumes; the rest stay where they were."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({k: v['queue'] for k, v in settings.CELERY_TASK_ROUTES.items()}))"
    )
    env = {**os.environ, "ALWEB_QUEUE_TRAINING": "gpu", "ALWEB_QUEUE_SCORING": "gpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    routes = json.loads(out.stdout.strip().splitlines()[-1])
    for task in ("cycle_train", "cycle_score", "cycle_score_chunk", "backbone_pretrain"):
        assert routes[f"campaigns.tasks.{task}"] == "gpu", (task, routes)
    assert routes["campaigns.tasks.cycle_sync"] == "io"


def test_production_settings_refuse_a_missing_or_weak_secret_key(monkeypatch: Any) -> None:
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    sys.modules.pop("alweb.settings.production", None)
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        importlib.import_module("alweb.settings.production")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    sys.modules.pop("alweb.settings.production", None)
    assert importlib.import_module("alweb.settings.production").DEBUG is False
    sys.modules.pop("alweb.settings.production", None)


def test_every_setting_read_from_the_environment_is_documented() -> None:
    names = set()
    for path in (ROOT / "alweb" / "settings").glob("*.py"):
        names |= set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z_]+)\"", path.read_text()))
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"{n}=" not in example or n not in readme)
    assert not missing, f"undocumented environment variables: {missing}"
