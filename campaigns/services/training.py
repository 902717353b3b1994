"""The thin layer between the ML engine (plain Python) and alweb's rows: train for a cycle, mirror the MLflow
registry in ModelVersion, register external models. Loading a version and scoring with it: `inference`."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

import torch
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from mlflow.exceptions import MlflowException

from campaigns.models import Cycle, Project, Split, TaskType
from campaigns.selectors import items_evaluation, items_labeled
from campaigns.services.backbones import backbone_dim, backbone_finetune_model
from campaigns.services.cycles import cycle_progress
from campaigns.services.detection_training import Fit, ProgressFn, detector_fit
from campaigns.services.encoders import EncoderConfigError, text_network, text_params
from campaigns.services.features import MODEL_CONFIG_PARAM, image_backbone, image_config, item_inputs
from campaigns.services.model_config import model_config_problem
from campaigns.services.training_sets import HASH_PARAM, SIZE_PARAM, training_set_hash, training_set_record
from engine.architectures import FeaturesHeadModel, TextHead, load_backbone
from engine.augment import augment_from
from engine.backbone import BackboneError
from engine.detector import CenterDetector
from engine.metrics import bootstrap_interval
from engine.recipes import IMAGE_AUGMENT, MONITOR, new_network, train_config
from engine.training import TrainConfig, effective_schedule, train_classifier
from models_registry.models import ModelStatus, ModelVersion
from models_registry.registry import ModelRegistry

MIN_LABELS_TO_TRAIN = 2


class TrainingError(Exception):
    """Training cannot run for a clear reason (too few labels, a task type alweb does not train)."""


class RegistryUnavailable(ConnectionError):
    """MLflow could not be reached: a ConnectionError, so the task layer retries it with backoff."""


@contextmanager
def mlflow_errors() -> Iterator[None]:
    """Turn MLflow's "API request ... failed" (a generic MlflowException) into a retryable, readable error."""
    try:
        yield
    except MlflowException as exc:
        text = str(exc)
        if "API request to" in text and "failed with exception" in text:
            raise RegistryUnavailable(f"MLflow at {settings.MLFLOW_TRACKING_URI} is unreachable: {text[:300]}") from exc
        raise


@lru_cache(maxsize=1)
def registry() -> ModelRegistry:
    return ModelRegistry(settings.MLFLOW_TRACKING_URI, artifact_root=settings.MLFLOW_ARTIFACT_ROOT)


def registered_name(project: Project) -> str:
    return f"alweb-project-{project.pk}"


def experiment_name(project: Project) -> str:
    """The MLflow experiment holding the project's runs (training and backbone pretraining)."""
    return f"alweb/project-{project.pk}"


def project_train_config(project: Project, model: torch.nn.Module, *, seed: int) -> TrainConfig:
    """The recipe the benchmarks measure (engine.recipes) with the project's own schedule: a head on frozen features
    and a fine-tuned pretrained network train their whole schedule, the image CNN from scratch keeps its best
    validation epoch. Every training of a project's network (a cycle's model, the label-quality folds) uses it."""
    cfg = project.model_config or {}
    return train_config(
        model,
        seed=seed,
        # Absent: the recipe's own schedule for the model (a fine-tuned encoder's is far shorter than a head's).
        epochs=int(cfg["epochs"]) if "epochs" in cfg else None,
        min_steps=int(cfg["min_steps"]) if "min_steps" in cfg else None,
        monitor=cfg.get("monitor", MONITOR),
        augment=augment_from(cfg["augment"]) if "augment" in cfg else IMAGE_AUGMENT,
    )


def build_model(project: Project, *, seed: int = 0) -> torch.nn.Module:
    """The project's network with its initial weights drawn from `seed` alone: without this the weights depend on
    whatever the worker process drew before, and the same cycle trained twice gives two different models."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _new_model(project)


def _new_model(project: Project) -> torch.nn.Module:
    n = len(project.labels)
    cfg = project.model_config or {}
    # Checked again here for rows stored before model_config had bounds: an image_size of 100,000 must fail the
    # cycle with a reason, not the worker with its memory.
    if problem := model_config_problem(cfg, check_storage=False):
        raise TrainingError(f"model_config: {problem}")
    if project.task_type == TaskType.TEXT_CLASSIFICATION:
        try:  # a head on the frozen encoder's embeddings, or the encoder fine-tuned (model_config.finetune)
            return text_network(cfg, n)
        except EncoderConfigError as exc:
            raise TrainingError(f"model_config: {exc}") from exc
    if project.task_type == TaskType.IMAGE_CLASSIFICATION and (backbone := image_backbone(project)) is not None:
        if backbone.mode == "finetune":
            # The whole network trains on pixels, the backbone at a lower rate than the head (engine.finetune).
            try:
                return backbone_finetune_model(backbone, num_classes=n, dropout=float(cfg.get("dropout", 0.3)))
            except BackboneError as exc:
                raise TrainingError(f"model_config.backbone: {exc}") from exc
        # Frozen: the user's pretrained network is the trunk and its features are cached per item
        # (features.item_inputs): alweb trains and MC-samples only the dropout head, the one text projects put on
        # their encoder.
        return TextHead(n, in_dim=backbone_dim(backbone), dropout=float(cfg.get("dropout", 0.3)))
    if project.task_type == TaskType.IMAGE_CLASSIFICATION and cfg.get("backbone_mode") == "finetune":
        raise TrainingError(
            "model_config.backbone_mode: finetune needs a TorchScript or MLflow backbone, not a state_dict"
        )
    if project.task_type == TaskType.IMAGE_CLASSIFICATION:
        size, channels = image_config(project)
        model = new_network("image", n, image_size=size, channels=channels, dropout=cfg.get("dropout"))
        if cfg.get("backbone"):
            _load_backbone(model, str(cfg["backbone"]), freeze=bool(cfg.get("freeze_backbone", False)))
        return model
    if project.task_type == TaskType.OBJECT_DETECTION:
        size, channels = image_config(project)
        return CenterDetector(
            len(project.labels), image_size=size, channels=channels, dropout=float(cfg.get("dropout", 0.3))
        )
    raise TrainingError(f"alweb cannot train a model for a {project.task_type} project")


def _load_backbone(model: FeaturesHeadModel, name: str, *, freeze: bool) -> None:
    """Start the convolutional trunk from a user's state_dict, a file in media storage (`model_config.backbone`);
    the dropout head always starts fresh for the project's labels."""
    if not default_storage.exists(name):
        raise TrainingError(f"model_config.backbone: {name!r} is not in media storage")
    try:
        with default_storage.open(name, "rb") as fh:
            state = torch.load(io.BytesIO(fh.read()), map_location="cpu", weights_only=True)
        load_backbone(model, state, freeze=freeze)
    except (ValueError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise TrainingError(f"model_config.backbone: {name!r} does not fit this project's network: {exc}") from exc


def _xy(project: Project, items: list[Any], model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    labels = list(project.labels)
    x = torch.as_tensor(item_inputs(project, items, model=model))
    y = torch.as_tensor([labels.index(i.label) for i in items], dtype=torch.long)
    return x, y


def _evaluation_metrics(project: Project, result: Any, *, seed: int) -> dict[str, Any]:
    """What the learning curve shows: test metrics with 95% bootstrap intervals and per-class precision, recall,
    F1 and support (confusion rows = true class); validation metrics apart. Test labels only ever measure."""
    metrics: dict[str, Any] = {}
    test = result.test
    if test is not None:
        ci = bootstrap_interval(test.confusion, seed=seed)
        metrics = {
            "accuracy": test.accuracy,
            "macro_f1": test.macro_f1,
            "accuracy_ci": list(ci["accuracy"]),
            "macro_f1_ci": list(ci["macro_f1"]),
            "per_class_f1": dict(zip(project.labels, test.f1, strict=True)),
            "per_class": {
                label: {"precision": p, "recall": r, "f1": f, "support": n}
                for label, p, r, f, n in zip(
                    project.labels, test.precision, test.recall, test.f1, test.support, strict=True
                )
            },
            "confusion": test.confusion,
            "evaluated_on": "test",
        }
    if result.valid is not None:
        metrics["valid"] = {"accuracy": result.valid.accuracy, "macro_f1": result.valid.macro_f1}
    return metrics


def _next_version(project: Project) -> int:
    Project.objects.select_for_update().filter(pk=project.pk).first()
    return (ModelVersion.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0) + 1


def model_version_mirror_champion(*, model_version: ModelVersion) -> None:
    """The champion flag moves in one transaction (a partial unique constraint allows one per project)."""
    with transaction.atomic():
        ModelVersion.objects.filter(project=model_version.project, is_champion=True).update(is_champion=False)
        ModelVersion.objects.filter(pk=model_version.pk).update(is_champion=True)
    model_version.is_champion = True


def _closing_model(project: Project, digest: str) -> ModelVersion | None:
    """The model trained when the last cycle closed, if it learned exactly today's labels with today's settings."""
    latest = (
        ModelVersion.objects.filter(project=project, kind="trained", status=ModelStatus.READY)
        .order_by("-version")
        .first()
    )
    if latest is None or not (latest.params or {}).get("closing") or latest.params.get(HASH_PARAM) != digest:
        return None
    return latest if latest.created_at >= project.updated_at else None


def _training_progress(cycle_id: int, done: int, total: int) -> None:
    cycle_progress(cycle_id=cycle_id, stage="training", done=done, total=total)


def _classifier_fit(
    *,
    project: Project,
    model: torch.nn.Module,
    train_items: list[Any],
    valid: list[Any],
    test: list[Any],
    seed: int,
    on_epoch: ProgressFn | None,
) -> Fit:
    config = project_train_config(project, model, seed=seed)
    epochs, _ = effective_schedule(config, len(train_items))
    x_train, y_train = _xy(project, train_items, model)
    result = train_classifier(
        model,
        (x_train, y_train),
        _xy(project, valid, model) if valid else None,
        num_classes=len(project.labels),
        test=_xy(project, test, model) if test else None,
        config=config,
        on_epoch=None if on_epoch is None else (lambda log: on_epoch(log.epoch, epochs)),
    )
    return Fit(
        model=result.model,
        metrics=_evaluation_metrics(project, result, seed=seed),
        # The augmentation the batches went through (none: no augment_* params), recorded with the version.
        params={
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            **(config.augment.params() if config.augment is not None else {}),
        },
        history=[{"epoch": h.epoch, **h.metrics()} for h in result.history],
        final_metrics=result.final_metrics(list(project.labels)),
        champion_metric="best_val_macro_f1",
        input_example=x_train[:2].numpy(),
    )


def model_train_for_cycle(*, cycle: Cycle, closing: bool = False) -> ModelVersion:
    """Train on the project's labels, evaluate, log and register in MLflow, mirror the version. Idempotent per cycle:
    a redelivered task finds the version this cycle already trained.

    `closing`: the model trained when the cycle closes, on every label so far, so the learning curve ends at the
    labels actually spent. The next cycle starts from it when no label (and no setting) changed since, instead of
    training the same model twice."""
    project = cycle.project
    for existing in ModelVersion.objects.filter(project=project, params__cycle_id=cycle.pk, status=ModelStatus.READY):
        if bool((existing.params or {}).get("closing")) == closing:
            return existing
    train_items = list(items_labeled(project=project).order_by("pk"))
    if len(train_items) < MIN_LABELS_TO_TRAIN:
        raise TrainingError(f"need at least {MIN_LABELS_TO_TRAIN} labeled items to train, have {len(train_items)}")
    if not closing and (reused := _closing_model(project, training_set_hash(train_items))) is not None:
        return reused
    experiment = experiment_name(project)
    with mlflow_errors():
        # Reach the registry before training: an unreachable MLflow then fails (and retries) in seconds, not after
        # minutes of training whose result could not be logged anyway.
        registry().ensure_experiment(experiment)
    model = build_model(project, seed=cycle.seed)
    valid, test = [list(items_evaluation(project=project, split=s).order_by("pk")) for s in (Split.VALID, Split.TEST)]
    # A closed cycle's progress stays its labeling's: the closing training does not report over it.
    progress = None if closing else partial(_training_progress, cycle.pk)
    fit = (detector_fit if project.task_type == TaskType.OBJECT_DETECTION else _classifier_fit)(
        project=project,
        model=model,
        train_items=train_items,
        valid=valid,
        test=test,
        seed=cycle.seed,
        on_epoch=progress,
    )
    metrics = fit.metrics
    # Every label the team paid for, at the time of this model: training, validation and test.
    metrics["labels"] = {"training": len(train_items), "valid": len(valid), "test": len(test)}
    params = {
        "cycle_id": cycle.pk,
        "cycle": cycle.number,
        "closing": closing,
        "labels_used": len(train_items),
        "valid_labels": len(valid),
        "test_labels": len(test),
        "heuristic": cycle.heuristic,
        "mc_iterations": cycle.mc_iterations,
        **fit.params,
        # A backbone's file (by sha256), mode and preprocessing: a frozen one's head is only reloadable with exactly
        # these; a fine-tuned version carries its trained network, these say where it started from.
        **(backbone.params() if (backbone := image_backbone(project)) is not None else {}),
        # A text project's encoder (by content), and whether it was fine-tuned and MC-sampled in its top layers.
        **(text_params(project.model_config or {}) if project.task_type == TaskType.TEXT_CLASSIFICATION else {}),
        "seed": cycle.seed,
        # Which items with which labels, provably: a snapshot export of this cycle recomputes it.
        HASH_PARAM: training_set_hash(train_items),
        SIZE_PARAM: len(train_items),
    }
    # Slow I/O (MLflow) first, outside any transaction; then the mirror row in one short transaction.
    # Validation only: the test split measures, it never chooses. Without validation labels a new version has no
    # value to compare, so under "if_better" the champion stays (the evaluation sample brings validation labels).
    with mlflow_errors():
        rv = registry().log_training_run(
            experiment=experiment,
            registered_name=registered_name(project),
            model=fit.model,
            input_example=fit.input_example,
            params=params,
            history=fit.history,
            metrics=fit.final_metrics,
            champion_metric=fit.champion_metric,
            policy=(project.model_config or {}).get("champion_policy", "if_better"),
            run_name=f"cycle-{cycle.number}" + ("-closed" if closing else ""),
        )
    with transaction.atomic():
        mv = ModelVersion.objects.create(
            project=project,
            version=_next_version(project),
            kind="trained",
            status=ModelStatus.READY,
            architecture=type(fit.model).__name__,
            mlflow_run_id=rv.run_id or "",
            model_uri=rv.model_uri,
            registered_name=rv.name,
            registered_version=str(rv.version),
            label_count=len(train_items),
            metrics=metrics,
            # The whole config beside MLflow's flat params: predictions build this version's inputs from it.
            params={**params, MODEL_CONFIG_PARAM: dict(project.model_config or {})},
        )
        training_set_record(model_version=mv, items=train_items)
        # In the same transaction as the row: a redelivered task finds the row and returns it, so a champion
        # flag set after the commit could be lost with the worker and never set again.
        if rv.champion:
            model_version_mirror_champion(model_version=mv)
    return mv


EXTERNAL_KINDS = ("pyfunc-classifier", "pyfunc-detector")
EXTERNAL_URI_SCHEMES = ("runs:/", "models:/")


def model_register_external(*, project: Project, model_uri: str, kind: str) -> ModelVersion:
    """Register any MLflow pyfunc (e.g. a YOLO detector) as the project's next version, and champion: alweb scores
    with it but does not train it. It receives the same inputs as alweb's models (images as float arrays
    [N, C, H, W] in [0, 1] at the project's image size; text as MiniLM embeddings)."""
    if kind not in EXTERNAL_KINDS:
        raise ValidationError({"kind": f"must be one of {', '.join(EXTERNAL_KINDS)}"})
    if (kind == "pyfunc-detector") != (project.task_type == TaskType.OBJECT_DETECTION):
        raise ValidationError({"kind": f"a {project.get_task_type_display().lower()} project cannot use a {kind}"})
    # Only models in alweb's MLflow (a run's or a registered/logged model): a pyfunc is code that runs in the
    # workers, so a path on the server's disk or a URL elsewhere is never loaded on a user's say-so.
    if not isinstance(model_uri, str) or not model_uri.startswith(EXTERNAL_URI_SCHEMES):
        raise ValidationError({"model_uri": f"must be an MLflow model URI: {' or '.join(EXTERNAL_URI_SCHEMES)}..."})
    try:
        with mlflow_errors():
            registry().load_pyfunc(model_uri)  # refused now, not after a cycle fails on it
    except RegistryUnavailable:
        raise
    except Exception as exc:  # MLflow raises many kinds (missing run, bad flavor, import errors in the model)
        raise ValidationError(
            {"model_uri": f"could not be loaded as an MLflow pyfunc model: {str(exc)[:300]}"}
        ) from exc
    with mlflow_errors():
        rv = registry().register_external(registered_name=registered_name(project), model_uri=model_uri, kind=kind)  # type: ignore[arg-type]
    with transaction.atomic():
        mv = ModelVersion.objects.create(
            project=project,
            version=_next_version(project),
            kind="external",
            status=ModelStatus.READY,
            architecture=kind,
            mlflow_run_id=rv.run_id or "",
            model_uri=rv.model_uri,
            registered_name=rv.name,
            registered_version=str(rv.version),
            params={"source": model_uri},
        )
    if rv.champion:
        model_version_mirror_champion(model_version=mv)
    return mv


def external_champion(*, project: Project) -> ModelVersion | None:
    """The project's champion when it is an external model: cycles then score with it instead of training."""
    return ModelVersion.objects.filter(project=project, is_champion=True, kind="external").first()
