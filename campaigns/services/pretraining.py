"""Self-supervised pretraining of an image project's trunk on its own pool (issue 19), as a product feature.

A person (dashboard) or automation (API) requests a run; a Celery task pretrains the trunk (``engine.ssl``: SimCLR
on the pool's images, no label used), stores it as a TorchScript file under backbones/project-<id>/ in media storage
(``backbones.backbone_store``), registers it in MLflow as a version of ``alweb-project-<id>-backbone`` and, when the
request said ``use``, points ``model_config.backbone`` at the file (frozen mode): every later cycle, the k-means /
typicality cold start and diversity selection then work on its features (``features.item_inputs``). Re-run it when
the pool grows: each run is a new file and a new version.

Delivery is at least once, so the task is idempotent, like a simulation run (``simulation_runs``): the run is
claimed with a conditional UPDATE that bumps its ``attempt``; a redelivered message finds a finished run and does
nothing, or finds it running (its worker died) and takes it over from the start; progress and the result are
written only while the attempt is still the worker's own.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from mlflow.exceptions import MlflowException

from campaigns.models import (
    ACTIVE_PRETRAINING_STATES,
    BackbonePretraining,
    Item,
    ItemState,
    Project,
    RunState,
    Split,
    TaskType,
)
from campaigns.services import queue
from campaigns.services.backbones import backbone_store
from campaigns.services.features import image_config
from campaigns.services.projects import project_update
from campaigns.services.run_claims import attempt_errors, run_claim
from campaigns.services.training import RegistryUnavailable, experiment_name, mlflow_errors, registry
from engine.ssl import MIN_IMAGES, SSLConfig, export_torchscript, pretrain

log = logging.getLogger(__name__)
St = RunState
MAX_EPOCHS = 500
MIN_SECONDS = 10


class PretrainingConflict(Exception):
    """The project already has a pretraining queued or running (the API's 409)."""


class _Superseded(Exception):
    """Another attempt took the run over: this worker stops."""


def registered_backbone_name(project: Project) -> str:
    return f"alweb-project-{project.pk}-backbone"


def _images(project: Project) -> Any:
    """The images pretraining learns from: the project's stored training and pool images, labeled or not (no label
    is read); validation and test images stay unseen, as they do for every model of the project."""
    return Item.objects.filter(project=project, split__in=(Split.TRAIN, Split.POOL), state=ItemState.ACTIVE).exclude(
        media=""
    )


def _conflict(project: Project) -> PretrainingConflict:
    active = BackbonePretraining.objects.filter(project=project, state__in=ACTIVE_PRETRAINING_STATES).first()
    which = f"pretraining {active.pk} is {active.state}" if active else "a pretraining is queued or running"
    return PretrainingConflict(f"{which} for this project: one at a time (wait for it, or follow it)")


def pretraining_validate(*, project: Project, epochs: Any, max_seconds: Any, flip: Any, use: Any) -> dict[str, Any]:
    """The request's parameters, checked (a ValidationError naming the field and why)."""
    if project.task_type != TaskType.IMAGE_CLASSIFICATION:
        raise ValidationError({"project": "self-supervised pretraining is for image classification projects"})
    limit = int(settings.ALWEB_SSL_MAX_SECONDS)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        raise ValidationError({"epochs": f"must be a whole number from 1 to {MAX_EPOCHS}"})
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, int) or not MIN_SECONDS <= max_seconds <= limit:
        raise ValidationError(
            {"max_seconds": f"must be a whole number from {MIN_SECONDS} to {limit} (ALWEB_SSL_MAX_SECONDS)"}
        )
    for name, value in (("flip", flip), ("use", use)):
        if not isinstance(value, bool):
            raise ValidationError({name: "must be true or false"})
    if (n := _images(project).count()) < MIN_IMAGES:
        raise ValidationError(
            {"project": f"has {n} stored training or pool images; pretraining needs at least {MIN_IMAGES}"}
        )
    return {"epochs": epochs, "max_seconds": max_seconds, "flip": flip, "use": use}


def pretraining_request(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    epochs: Any = SSLConfig.epochs,
    max_seconds: Any = 600,
    flip: Any = False,
    use: Any = False,
) -> BackbonePretraining:
    """Check the request, record the run and queue its task after commit. PretrainingConflict when the project
    already has one queued or running."""
    params = pretraining_validate(project=project, epochs=epochs, max_seconds=max_seconds, flip=flip, use=use)
    if BackbonePretraining.objects.filter(project=project, state__in=ACTIVE_PRETRAINING_STATES).exists():
        raise _conflict(project)
    try:
        with transaction.atomic():
            run = BackbonePretraining.objects.create(
                project=project, params=params, created_by=cast(User | None, user), progress=_progress(0, 0)
            )
            queue.enqueue_on_commit(queue.BACKBONE_PRETRAIN, run_id=run.pk)
    except IntegrityError as exc:  # two requests at once: the one-active-run constraint let one through
        raise _conflict(project) from exc
    return run


def _progress(done: int, total: int) -> dict[str, object]:
    return {"done": done, "total": total, "updated_at": timezone.now().isoformat()}


def pretraining_claim(*, run_id: int) -> int | None:
    """Take the run for this worker; the attempt it now holds, or None when there is nothing to do (finished,
    failed or deleted)."""
    return run_claim(BackbonePretraining, run_id=run_id, queued=St.QUEUED, running=St.RUNNING)


def _mine(run_id: int, attempt: int) -> Q:
    return Q(pk=run_id, state=St.RUNNING, attempt=attempt)


def _load_pixels(project: Project, seed: int) -> np.ndarray:
    from campaigns.services.features import image_array

    ids = list(_images(project).order_by("pk").values_list("pk", flat=True))
    cap = int(settings.ALWEB_SSL_MAX_IMAGES)
    if len(ids) > cap:  # a seeded sample: the same run pretrains on the same images
        ids = sorted(np.random.default_rng(seed).choice(ids, cap, replace=False).tolist())
    size, channels = image_config(project)
    items = Item.objects.in_bulk(ids)
    return np.stack([image_array(items[i], size=size, channels=channels) for i in ids])


def pretraining_run(*, run_id: int) -> BackbonePretraining | None:
    """The task's work (idempotent, see the module's docstring). Returns the run once this attempt finished it, None
    when there was nothing to do or another attempt took over."""
    attempt = pretraining_claim(run_id=run_id)
    if attempt is None:
        return None
    with attempt_errors(attempt):  # giving up fails the run only while it is still this attempt's
        return _pretrain(run_id, attempt)


def _pretrain(run_id: int, attempt: int) -> BackbonePretraining | None:
    run = BackbonePretraining.objects.select_related("project").get(pk=run_id)
    project, params = run.project, run.params

    def on_epoch(done: int, total: int) -> None:
        if BackbonePretraining.objects.filter(_mine(run_id, attempt)).update(progress=_progress(done, total)) != 1:
            raise _Superseded

    config = SSLConfig(
        epochs=int(params["epochs"]),
        max_seconds=float(params["max_seconds"]),
        augment=replace(SSLConfig().augment, flip=bool(params["flip"])),
        seed=run.pk,
    )
    pixels = _load_pixels(project, seed=run.pk)
    experiment = experiment_name(project)
    with mlflow_errors():
        registry().ensure_experiment(experiment)  # an unreachable MLflow fails (and retries) before the training
    try:
        result = pretrain(pixels, config, on_epoch=on_epoch)
    except _Superseded:
        log.warning("pretraining %s: attempt %s superseded, stopping", run_id, attempt)
        return None
    data = export_torchscript(result.trunk)
    name = backbone_store(project_id=project.pk, upload=io.BytesIO(data), size=len(data))
    metrics = {
        "losses": [round(v, 4) for v in result.losses],
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "feature_dim": result.feature_dim,
        "stopped_by": result.stopped_by,
        "mean": list(result.mean),
        "std": list(result.std),
    }
    size, channels = image_config(project)
    with mlflow_errors():
        rv = registry().log_training_run(
            experiment=experiment,
            registered_name=registered_backbone_name(project),
            model=result.trunk,
            input_example=pixels[:2],
            params={
                **config.params(),
                "images": len(pixels),
                "image_size": size,
                "channels": channels,
                "backbone_file": name,
                "pretraining_id": run.pk,
            },
            history=[{"epoch": i + 1, "ntxent_loss": v} for i, v in enumerate(result.losses)],
            metrics={"final_ntxent_loss": result.losses[-1], "seconds": result.seconds},
            policy="never",  # a backbone is chosen by the project's config, never by an alias
            run_name=f"pretraining-{run.pk}",
            kind="torch-backbone",
        )
    with transaction.atomic():
        finished = BackbonePretraining.objects.filter(_mine(run_id, attempt)).update(
            state=St.DONE,
            images=len(pixels),
            backbone=name,
            sha256=hashlib.sha256(data).hexdigest(),
            mlflow_run_id=rv.run_id or "",
            model_uri=rv.model_uri,
            metrics=metrics,
            progress=_progress(result.epochs_run, result.epochs_run),
            finished_at=timezone.now(),
        )
        if finished == 1 and params.get("use"):
            _use(project, name, result.mean, result.std)
    if finished != 1:
        # Cancelled, or taken over, while this attempt stored and registered its trunk: no run points at them.
        _discard_unclaimed(name, rv.name, rv.version)
        return None
    run.refresh_from_db()
    return run


def _discard_unclaimed(file: str, registered: str, version: int) -> None:
    """Delete a trunk file and its MLflow version that no run points at (best effort: what is left is logged)."""
    default_storage.delete(file)
    try:
        with mlflow_errors():
            registry().discard_version(registered_name=registered, version=version)
    except (RegistryUnavailable, MlflowException) as exc:
        log.warning("pretraining: %s version %s left in MLflow: %s", registered, version, exc)


def _use(project: Project, name: str, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """The project's model_config points at the new trunk, frozen, with the normalisation it was trained with (the
    config save checks the file and plans the items' features, as any backbone change does)."""
    fresh = Project.objects.get(pk=project.pk)
    config = {
        **(fresh.model_config or {}),
        "backbone": name,
        "backbone_mode": "frozen",
        "mean": list(mean),
        "std": list(std),
    }
    try:
        project_update(project=fresh, model_config=config)
    except ValidationError as exc:
        raise ValidationError({"use": f"the pretrained backbone could not be set: {exc}"}) from exc


def pretraining_fail(*, run_id: int, reason: str, attempt: int | None = None) -> bool:
    """The task gave up: the run fails with the reason (a finished run stays done). With `attempt` (the one whose
    error it was), only while the run is still that attempt's: a stale worker giving up never fails a run a newer
    attempt is training. True when the run failed."""
    runs = BackbonePretraining.objects.filter(pk=run_id, state__in=ACTIVE_PRETRAINING_STATES)
    if attempt is not None:
        runs = runs.filter(attempt=attempt)
    return bool(runs.update(state=St.FAILED, failure_reason=reason[:2000], finished_at=timezone.now()))


def pretraining_cancel(
    *, run: BackbonePretraining, user: AbstractBaseUser | AnonymousUser | None
) -> BackbonePretraining:
    """Stop a queued or running pretraining: it ends failed, "cancelled by <user>", and the project may request
    another at once. A worker training it stops at its next epoch (its writes need the run still running).
    PretrainingConflict when the run is over already."""
    who = getattr(user, "username", "") or "an operator"
    if not pretraining_fail(run_id=run.pk, reason=f"cancelled by {who}"):
        run.refresh_from_db()
        raise PretrainingConflict(f"pretraining {run.pk} is {run.state}: only a queued or running one can be cancelled")
    run.refresh_from_db()
    return run


def pretraining_requeue(*, run: BackbonePretraining, now: datetime | None = None) -> BackbonePretraining:
    """Send a stalled run's task again: one still queued, or running, whose progress has not moved for
    ALWEB_REQUEUE_STALE_AFTER seconds (its message or its worker was lost). The task is idempotent: the new
    delivery claims the run, or takes it over from the start. PretrainingConflict when the run is over, or moved
    too recently for a worker not to hold it."""
    run.refresh_from_db()
    if run.state not in ACTIVE_PRETRAINING_STATES:
        raise PretrainingConflict(f"pretraining {run.pk} is {run.state}: nothing to requeue")
    what = f"pretraining {run.pk} is {run.state}"
    if too_soon := queue.requeue_too_soon(what, run.progress, run.started_at, run.created_at, now=now):
        raise PretrainingConflict(too_soon)
    with transaction.atomic():
        queue.enqueue_on_commit(queue.BACKBONE_PRETRAIN, run_id=run.pk)
    return run
