"""Thin Celery tasks: each takes ids and calls one service. Delivery is at least once (acks_late), so every
service they call is idempotent; network errors (Label Studio, MLflow) retry with exponential backoff, and a task
that gives up marks its cycle failed with the reason."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import requests
from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from campaigns.services import feature_fanout, pipeline, simulation_runs
from campaigns.services.cycles import cycle_fail
from campaigns.services.exports import export_fail, export_run, exports_prune
from campaigns.services.item_counts import item_counts_compact
from campaigns.services.label_quality import label_quality_fail, label_quality_run
from campaigns.services.overlap import project_run_overlap
from campaigns.services.pretraining import pretraining_fail, pretraining_run
from campaigns.services.run_claims import failed_attempt
from integrations.labelstudio.review_sync import reviews_run_sync

log = logging.getLogger(__name__)

# Errors worth retrying: the other side may come back (a restarted Label Studio, MLflow, a dropped DB connection).
# Not bare OSError: a missing file (FileNotFoundError, PermissionError) would fail the same way six times in a row;
# ConnectionError and TimeoutError are the OSErrors that another try can cure. httpx (the Label Studio SDK's
# transport) raises its own TransportError, which is not an OSError.
RETRYABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    requests.ConnectionError,
    requests.Timeout,
    httpx.TransportError,
    OperationalError,
    InterfaceError,
)


def task_arg(args: Any, kwargs: Any, name: str, position: int, default: Any = None) -> Any:
    """An argument of the call on_failure reports, whether it was passed by name or by position."""
    return kwargs.get(name, args[position] if len(args) > position else default)


class RetryingTask(Task):
    """Network errors retry with exponential backoff and jitter; on_failure runs once the task gives up."""

    autoretry_for = RETRYABLE
    retry_backoff = settings.ALWEB_TASK_RETRY_BACKOFF
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = settings.ALWEB_TASK_MAX_RETRIES


class RecordTask(RetryingTask):
    """A task working on one record (a cycle, an export, a run): once it gives up, the record is marked failed with
    the reason. Subclasses name the argument holding the record's id (passed by name or first) and how to fail it."""

    record_arg = ""

    def mark_failed(self, record_id: int, reason: str, attempt: int | None) -> None:
        """`attempt`: for a claimed run (run_claims), the attempt whose error made the task give up."""
        raise NotImplementedError

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        record_id = task_arg(args, kwargs, self.record_arg, 0)
        if record_id is not None:
            self.mark_failed(record_id, f"{type(exc).__name__}: {exc}", failed_attempt(exc))
        log.error("task %s for %s %s failed: %s", self.name, self.record_arg, record_id, exc)


class CycleTask(RecordTask):
    """Marks the cycle failed, with the reason, once retries are exhausted or the error is not retryable."""

    record_arg = "cycle_id"

    def mark_failed(self, record_id: int, reason: str, attempt: int | None) -> None:
        cycle_fail(cycle_id=record_id, reason=reason)


@shared_task(base=CycleTask, bind=True, name="campaigns.tasks.cycle_train")
def cycle_train(self: Task, cycle_id: int) -> None:
    pipeline.cycle_run_training(cycle_id=cycle_id)


@shared_task(base=RetryingTask, bind=True, name="campaigns.tasks.cycle_train_closing")
def cycle_train_closing(self: Task, cycle_id: int) -> None:
    """A closed cycle's closing model (network errors retry; the cycle stays closed whatever happens)."""
    pipeline.cycle_run_closing_training(cycle_id=cycle_id)


@shared_task(base=CycleTask, bind=True, name="campaigns.tasks.cycle_score")
def cycle_score(self: Task, cycle_id: int) -> None:
    """Plans the cycle's scoring and sends its chunks to the scoring queue, one task each."""
    pipeline.cycle_run_scoring(cycle_id=cycle_id, fan_out=True)


@shared_task(base=CycleTask, bind=True, name="campaigns.tasks.cycle_score_chunk")
def cycle_score_chunk(self: Task, cycle_id: int, chunk: int) -> None:
    """One chunk of a cycle's pool, on whichever scoring worker takes it; the last one completes the cycle."""
    pipeline.cycle_run_score_chunk(cycle_id=cycle_id, chunk=chunk)


@shared_task(base=RetryingTask, bind=True, name="campaigns.tasks.project_features")
def project_features(self: Task, project_id: int) -> None:
    """Plans the features of a project's items that have none (after an import) and sends one task per chunk."""
    feature_fanout.features_plan(project_id=project_id)


@shared_task(base=RetryingTask, bind=True, name="campaigns.tasks.project_features_chunk")
def project_features_chunk(self: Task, project_id: int, chunk: int, chunk_ids: int, key: str) -> None:
    """One chunk's missing features, on whichever scoring worker takes it; a redelivery computes only what is
    still missing."""
    feature_fanout.features_chunk(project_id=project_id, chunk=chunk, chunk_ids=chunk_ids, key=key)


@shared_task(base=CycleTask, bind=True, name="campaigns.tasks.cycle_select")
def cycle_select(self: Task, cycle_id: int) -> None:
    pipeline.cycle_run_selection(cycle_id=cycle_id)


@shared_task(base=CycleTask, bind=True, name="campaigns.tasks.cycle_sync")
def cycle_sync(self: Task, cycle_id: int) -> None:
    pipeline.cycle_run_sync(cycle_id=cycle_id)


class ResyncTask(RetryingTask):
    """A resync that gives up marks its rows failed, with the reason; the cycle stays out for labeling (its tasks in
    Label Studio are still being labeled), and the next resync repairs the rows."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        cycle_id = task_arg(args, kwargs, "cycle_id", 0)
        item_ids = task_arg(args, kwargs, "item_ids", 1, [])
        if cycle_id is not None:
            pipeline.cycle_resync_failed(cycle_id=cycle_id, item_ids=item_ids, reason=f"{type(exc).__name__}: {exc}")
        log.error("resync of cycle %s failed: %s", cycle_id, exc)


@shared_task(base=ResyncTask, bind=True, name="campaigns.tasks.cycle_resync")
def cycle_resync(self: Task, cycle_id: int, item_ids: list[int]) -> None:
    pipeline.cycle_run_resync(cycle_id=cycle_id, item_ids=item_ids)


@shared_task(base=RetryingTask, bind=True, name="campaigns.tasks.project_pull")
def project_pull(self: Task, project_id: int, task_ids: list[int] | None = None) -> None:
    pipeline.project_run_pull(project_id=project_id, task_ids=task_ids)


@shared_task(base=RetryingTask, bind=True, name="campaigns.tasks.project_overlap")
def project_overlap(self: Task, project_id: int) -> None:
    """A changed overlap or consensus rule: labels resolved again, Label Studio's annotators per task set."""
    project_run_overlap(project_id=project_id)


class ExportTask(RecordTask):
    """Marks the export failed, with the reason, once it gives up; a retry or redelivery rewrites the same file."""

    record_arg = "export_id"

    def mark_failed(self, record_id: int, reason: str, attempt: int | None) -> None:
        export_fail(export_id=record_id, reason=reason)


@shared_task(base=ExportTask, bind=True, name="campaigns.tasks.project_export")
def project_export(self: Task, export_id: int) -> None:
    export_run(export_id=export_id)


@shared_task(name="campaigns.tasks.exports_prune")
def prune_old_exports() -> None:
    """Hourly (beat): exports past ALWEB_EXPORT_RETENTION_DAYS go, file and row."""
    deleted = exports_prune()
    if deleted:
        log.info("deleted %s old exports", deleted)


@shared_task(name="campaigns.tasks.simulations_cleanup")
def cleanup_simulations() -> None:
    """Hourly (beat): a run lost with its broker message would hold its project's one run slot for good; it fails
    after the task time limit, and sandboxes left behind go (`simulation_runs.simulations_cleanup`)."""
    outcome = simulation_runs.simulations_cleanup()
    if outcome.runs_failed or outcome.sandboxes_deleted:
        log.info(
            "simulations cleanup: %s lost runs failed, %s sandboxes deleted",
            outcome.runs_failed,
            outcome.sandboxes_deleted,
        )


@shared_task(name="campaigns.tasks.item_counts_compact")
def compact_item_counts() -> None:
    """Hourly (beat): each project's kept item counts folded into one row per key (reads stay a few rows)."""
    removed = item_counts_compact()
    if removed:
        log.info("folded %s item count rows", removed)


class LabelQualityTask(RecordTask):
    """Marks the label-quality run failed, with the reason, once it gives up; the cycle is not affected."""

    record_arg = "model_version_id"

    def mark_failed(self, record_id: int, reason: str, attempt: int | None) -> None:
        label_quality_fail(model_version_id=record_id, reason=reason)


@shared_task(base=LabelQualityTask, bind=True, name="campaigns.tasks.label_quality")
def label_quality(self: Task, model_version_id: int) -> None:
    """Suspected label errors after a training (K-fold out-of-fold probabilities, then cleanlab)."""
    label_quality_run(model_version_id=model_version_id)


@shared_task(base=RetryingTask, bind=True, name="campaigns.tasks.review_sync")
def review_sync(self: Task, project_id: int) -> None:
    """Send the project's open reviews not yet in Label Studio there, as review tasks."""
    reviews_run_sync(project_id=project_id)


class SimulationTask(RecordTask):
    """Marks the simulation failed, with the reason, once it gives up (its sandboxes deleted); a retry or a
    redelivery starts the run again cleanly (`simulation_runs.simulation_run`)."""

    record_arg = "run_id"

    def mark_failed(self, record_id: int, reason: str, attempt: int | None) -> None:
        simulation_runs.simulation_fail(run_id=record_id, reason=reason, attempt=attempt)


@shared_task(base=SimulationTask, bind=True, name="campaigns.tasks.simulation_run")
def simulation_run(self: Task, run_id: int) -> None:
    simulation_runs.simulation_run(run_id=run_id)


class PretrainingTask(RecordTask):
    """Marks the pretraining failed, with the reason, once it gives up; a redelivery finds it done, or takes it
    over from the start (`pretraining.pretraining_run`)."""

    record_arg = "run_id"

    def mark_failed(self, record_id: int, reason: str, attempt: int | None) -> None:
        pretraining_fail(run_id=record_id, reason=reason, attempt=attempt)


@shared_task(base=PretrainingTask, bind=True, name="campaigns.tasks.backbone_pretrain")
def backbone_pretrain(self: Task, run_id: int) -> None:
    """Self-supervised pretraining of the project's image trunk on its pool (engine.ssl)."""
    pretraining_run(run_id=run_id)


@shared_task(name="campaigns.tasks.pull_all_projects")
def pull_all_projects() -> None:
    """Periodic (beat): Label Studio never retries a webhook, so a pull must run anyway."""
    for project_id in pipeline.projects_to_pull():
        project_pull.delay(project_id)
