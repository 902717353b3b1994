"""Predictions for new data with the project's champion, and the champion's files to take away.

For teams that use the model outside Label Studio: the same model loading (`inference.model_load`, from MLflow), the
same inputs (`features.payload_inputs`: the project's image size and channels, the MiniLM encoder for text) and the
same MC-dropout scoring (`inference.model_score`) as a cycle's pool, on data that is not stored as items. The
uncertainty is the project's default heuristic (`Project.default_heuristic`) over `default_mc_iterations` dropout
passes, with a fixed seed: the same request gives the same answer (the dropout masks are drawn for the request's
batch, so an item's numbers move by the MC noise when it is sent with other items). Nothing is written to the
database.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from campaigns.ingest.images import decode_image
from campaigns.ingest.rows import ItemImportError
from campaigns.models import Project, TaskType
from campaigns.services.features import payload_inputs, project_as_trained
from campaigns.services.inference import model_score
from campaigns.services.model_cache import model_cached
from campaigns.services.remote_images import RemoteImageError, fetch_image
from campaigns.services.training import mlflow_errors, registry
from models_registry.models import ModelStatus, ModelVersion

PREDICT_SEED = 0  # fixed: a prediction is a function of the model and the input, not of the request's timing


class NoChampion(Exception):
    """The project has no model to predict with yet (no cycle has trained one, none was registered)."""


@dataclass(frozen=True, slots=True)
class PredictInput:
    """One item of a request: text, image bytes, or an image URL to fetch. `where` locates it for error messages:
    (list name, index, field), e.g. ("items", 2, "url") or ("images", 0, "")."""

    where: tuple[str, int, str]
    text: str | None = None
    image: bytes | None = None
    url: str | None = None


class PredictInputError(ValueError):
    """One input is unusable; `where` is its PredictInput.where, `reason` says why in words."""

    def __init__(self, where: tuple[str, int, str], reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")


@dataclass
class Prediction:
    label: str | None
    probabilities: dict[str, float]
    uncertainty: float
    confidence: float
    boxes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PredictionResult:
    model_version: ModelVersion
    heuristic: str
    mc_iterations: int
    predictions: list[Prediction]


def champion_of(*, project: Project) -> ModelVersion:
    """The version cycles score with (the `champion` alias's mirror), or NoChampion."""
    mv = ModelVersion.objects.filter(project=project, is_champion=True, status=ModelStatus.READY).first()
    if mv is None:
        raise NoChampion(
            "this project has no champion model yet: run a cycle with at least two labels, or register a model"
        )
    return mv


def _check_kind(project: Project, inputs: list[PredictInput]) -> None:
    wants_text = project.task_type == TaskType.TEXT_CLASSIFICATION
    for item in inputs:
        if wants_text and item.text is None:
            raise PredictInputError(item.where, "this project classifies text: send text, not an image")
        if not wants_text and item.text is not None:
            raise PredictInputError(item.where, "this project takes images: send an image upload or url, not text")


def _payload(item: PredictInput, *, max_bytes: int) -> str | bytes:
    """The text, or checked image bytes (fetched first for a URL): PredictInputError naming the input if unusable."""
    if item.text is not None:
        return item.text
    data = item.image
    if item.url is not None:
        try:
            data = fetch_image(item.url, max_bytes=max_bytes)
        except RemoteImageError as exc:
            raise PredictInputError(item.where, str(exc)) from exc
    if not data:
        raise PredictInputError(item.where, "the image is empty")
    try:  # the import's checks: a readable image, fully decodable, within the pixel limit
        decode_image(data, file="", line="", max_pixels=settings.ALWEB_IMPORT_MAX_IMAGE_PIXELS)
    except ItemImportError as exc:
        raise PredictInputError(item.where, exc.reason) from exc
    return data


def predict(*, project: Project, inputs: list[PredictInput]) -> PredictionResult:
    """The champion's prediction for each input, in order. Raises NoChampion, or PredictInputError for the first
    unusable input (nothing is predicted then)."""
    mv = champion_of(project=project)
    _check_kind(project, inputs)
    payloads = [_payload(i, max_bytes=settings.ALWEB_PREDICT_MAX_BYTES) for i in inputs]
    labels = list(project.labels)
    model = model_cached(model_version=mv)  # loaded once per process: a version's files never change
    x = payload_inputs(project_as_trained(project, mv), payloads, model=model)
    heuristic, iterations = project.default_heuristic, project.default_mc_iterations
    chunk = model_score(
        model=model,
        inputs=x,
        ids=list(range(len(payloads))),
        iterations=iterations,
        heuristic=heuristic,
        seed=PREDICT_SEED,
        labels=labels,
    )
    predictions = [
        Prediction(
            label=labels[int(k)] if k >= 0 else None,
            # A detector gives boxes, not class probabilities for the whole image.
            probabilities={} if chunk.boxes is not None else {n: float(p) for n, p in zip(labels, probs, strict=True)},
            uncertainty=float(u),
            confidence=float(c),
            boxes=list(chunk.boxes[i]) if chunk.boxes is not None else [],
        )
        for i, (k, probs, u, c) in enumerate(
            zip(chunk.labels, chunk.probs, chunk.uncertainty, chunk.confidence, strict=True)
        )
    ]
    # An external model gives one answer per item: no dropout passes (a single-pass heuristic stands in, and
    # `chunk.heuristic` says which).
    return PredictionResult(mv, chunk.heuristic, 1 if mv.kind == "external" else iterations, predictions)


def champion_archive(*, project: Project) -> tuple[str, Path]:
    """(file name, path of a zip) of the champion's MLflow model folder: MLmodel, weights, requirements, loadable
    with `mlflow.pyfunc.load_model` (or `mlflow.pytorch.load_model`) once unpacked. The caller deletes the file."""
    mv = champion_of(project=project)
    name = f"{mv.registered_name or f'alweb-project-{project.pk}'}-v{mv.registered_version or mv.version}"
    with tempfile.TemporaryDirectory(prefix="alweb-model-") as tmp:
        with mlflow_errors():
            folder = registry().download_model(mv.model_uri, Path(tmp) / "model")
        handle, path = tempfile.mkstemp(prefix="alweb-model-", suffix=".zip")
        with open(handle, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(file, f"{name}/{file.relative_to(folder).as_posix()}")
    return f"{name}.zip", Path(path)
