"""Self-supervised pretraining on a project's pool, end to end against the real parts (Postgres, media storage, a
real MLflow store): the task pretrains once (a redelivery of a finished run does nothing), stores the TorchScript
trunk under backbones/, registers it as a backbone version, sets it as the project's frozen backbone, and the cold
start's k-means then clusters its features, not pixels. A run whose worker died is taken over and finishes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage

from campaigns import tasks
from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import BackbonePretraining, Item, Project
from campaigns.services import pretraining
from campaigns.services.features import raw_features
from campaigns.services.items import items_import
from campaigns.services.pretraining import (
    PretrainingConflict,
    pretraining_cancel,
    pretraining_request,
    pretraining_run,
    registered_backbone_name,
)
from campaigns.services.run_claims import attempt_errors, failed_attempt
from campaigns.services.training import registry

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]


def test_pretraining_runs_once_registers_and_becomes_the_frozen_backbone(
    make_project: Any, tmp_path: Path, mlflow_store: str, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(tasks.backbone_pretrain, "delay", lambda run_id: sent.append(run_id))
    project = make_project(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config={"image_size": 16, "channels": 1},
        split_ratios={"train": 0.0, "valid": 0.1, "test": 0.1, "pool": 0.8},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=60, size=16))
    with django_capture_on_commit_callbacks(execute=True):
        run = pretraining_request(project=project, user=project.owner, epochs=2, max_seconds=10, use=True)

    done = pretraining_run(run_id=run.pk)
    assert done is not None and done.state == "done" and done.attempt == 1
    assert pretraining_run(run_id=run.pk) is None  # redelivered: finds it done, trains nothing
    run.refresh_from_db()
    assert run.attempt == 1 and run.images == Item.objects.filter(project=project, split="pool").count()
    assert run.progress["done"] == run.progress["total"] == run.metrics["epochs_run"] >= 1
    with default_storage.open(run.backbone, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == run.sha256
    assert run.backbone.startswith(f"backbones/project-{project.pk}/")
    name = registered_backbone_name(project)
    assert run.model_uri == f"models:/{name}/1"
    trunk = registry().load_torch(run.model_uri)
    assert sum(p.numel() for p in trunk.parameters()) > 0

    config = Project.objects.get(pk=project.pk).model_config
    assert config["backbone"] == run.backbone and config["backbone_mode"] == "frozen"
    # With the backbone set, what the cold start clusters is the trunk's features (cached per item), not pixels.
    ids = list(Item.objects.filter(project=project, split="pool").values_list("pk", flat=True)[:5])
    assert raw_features(Project.objects.get(pk=project.pk), ids).shape == (5, run.metrics["feature_dim"])

    # The pool grew: run again on demand. Its worker dies mid-run (left "running"); the redelivery takes it over.
    with django_capture_on_commit_callbacks(execute=True):
        again = pretraining_request(project=project, user=project.owner, epochs=1, max_seconds=10)
    BackbonePretraining.objects.filter(pk=again.pk).update(state="running", attempt=1)
    finished = pretraining_run(run_id=again.pk)
    assert finished is not None and finished.state == "done" and finished.attempt == 2
    assert finished.model_uri == f"models:/{name}/2" and sent == [run.pk, again.pk]


def test_a_task_that_gives_up_fails_the_run_and_a_finished_run_stays_done(make_project: Any) -> None:
    project = make_project(task_type="image_classification")
    running = BackbonePretraining.objects.create(project=project, state="running")
    tasks.backbone_pretrain.on_failure(MemoryError("pool too large"), "t1", (running.pk,), {}, None)
    running.refresh_from_db()
    assert running.state == "failed" and running.failure_reason == "MemoryError: pool too large"
    done = BackbonePretraining.objects.create(project=project, state="done")
    tasks.backbone_pretrain.on_failure(RuntimeError("late"), "t2", (), {"run_id": done.pk}, None)
    done.refresh_from_db()
    assert done.state == "done" and done.failure_reason == ""
    assert pretraining_run(run_id=done.pk) is None and pretraining_run(run_id=running.pk) is None


def test_a_stale_attempts_error_does_not_fail_the_run_a_newer_attempt_holds(
    make_project: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Attempt 1's worker was thought lost and attempt 2 took the run over; attempt 1 then fails late. Its error
    carries its attempt, so giving up leaves attempt 2's run running; attempt 2's own error fails it."""
    project = make_project(
        task_type="image_classification", labels=DIGIT_LABELS, model_config={"image_size": 16, "channels": 1}
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=30, size=16))
    run = BackbonePretraining.objects.create(
        project=project, params={"epochs": 1, "max_seconds": 10, "flip": False, "use": False}
    )

    def taken_over_then_broken(project: Any, seed: int) -> Any:
        BackbonePretraining.objects.filter(pk=run.pk).update(attempt=2)  # the redelivery's claim
        raise OSError("storage went away")

    monkeypatch.setattr(pretraining, "_load_pixels", taken_over_then_broken)
    with pytest.raises(OSError) as raised:
        pretraining_run(run_id=run.pk)
    assert failed_attempt(raised.value) == 1
    tasks.backbone_pretrain.on_failure(raised.value, "t1", (run.pk,), {}, None)
    run.refresh_from_db()
    assert (run.state, run.attempt, run.failure_reason) == ("running", 2, "")
    with pytest.raises(RuntimeError) as own, attempt_errors(2):
        raise RuntimeError("attempt 2 broke")
    tasks.backbone_pretrain.on_failure(own.value, "t2", (run.pk,), {}, None)
    run.refresh_from_db()
    assert run.state == "failed" and run.failure_reason == "RuntimeError: attempt 2 broke"


def test_a_cancelled_run_stops_its_worker_and_frees_the_project(
    make_project: Any, tmp_path: Path, mlflow_store: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tasks.backbone_pretrain, "delay", lambda run_id: None)
    project = make_project(
        task_type="image_classification", labels=DIGIT_LABELS, model_config={"image_size": 16, "channels": 1}
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=60, size=16))
    run = pretraining_request(project=project, user=project.owner, epochs=50, max_seconds=60)
    real = pretraining.pretrain
    epochs: list[int] = []

    def cancelled_after_the_first_epoch(pixels: Any, config: Any, *, on_epoch: Any) -> Any:
        def epoch(done: int, total: int) -> None:
            epochs.append(done)
            if done == 1:
                pretraining_cancel(run=BackbonePretraining.objects.get(pk=run.pk), user=project.owner)
            on_epoch(done, total)

        return real(pixels, config, on_epoch=epoch)

    monkeypatch.setattr(pretraining, "pretrain", cancelled_after_the_first_epoch)
    assert pretraining_run(run_id=run.pk) is None  # stopped at the epoch after the cancel: nothing registered
    run.refresh_from_db()
    assert run.state == "failed" and run.failure_reason == f"cancelled by {project.owner.username}"
    assert epochs == [1], epochs
    assert run.backbone == "" and "backbone" not in Project.objects.get(pk=project.pk).model_config
    with pytest.raises(PretrainingConflict, match="only a queued or running one"):
        pretraining_cancel(run=run, user=project.owner)
    assert pretraining_request(project=project, user=project.owner, epochs=1, max_seconds=10).state == "queued"


def test_a_run_cancelled_while_it_registers_leaves_no_file_or_version(
    make_project: Any, tmp_path: Path, mlflow_store: str, monkeypatch: Any
) -> None:
    """The cancel lands after the training, while the trunk is exported, stored and registered: the final write
    finds the run no longer its own, and the file and the MLflow version nobody points at are deleted."""
    monkeypatch.setattr(tasks.backbone_pretrain, "delay", lambda run_id: None)
    project = make_project(
        task_type="image_classification", labels=DIGIT_LABELS, model_config={"image_size": 16, "channels": 1}
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=60, size=16))
    kept = pretraining_run(run_id=pretraining_request(project=project, user=project.owner, epochs=1, max_seconds=10).pk)
    assert kept is not None and kept.state == "done"  # version 1, a finished run's: it stays
    run = pretraining_request(project=project, user=project.owner, epochs=1, max_seconds=10)
    real = pretraining.export_torchscript

    def cancelled_meanwhile(trunk: Any) -> bytes:
        pretraining_cancel(run=BackbonePretraining.objects.get(pk=run.pk), user=project.owner)
        return real(trunk)

    monkeypatch.setattr(pretraining, "export_torchscript", cancelled_meanwhile)
    assert pretraining_run(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.state == "failed" and run.backbone == "" and run.model_uri == ""
    _, files = default_storage.listdir(f"backbones/project-{project.pk}")
    assert [f"backbones/project-{project.pk}/{f}" for f in files] == [kept.backbone]
    name = registered_backbone_name(project)
    assert [int(v.version) for v in registry().client.search_model_versions(f"name='{name}'")] == [1]
