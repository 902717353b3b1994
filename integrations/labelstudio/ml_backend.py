"""alweb as a Label Studio ML backend, per project: the champion model's MC-dropout predictions and scores.

LS's protocol: `/health`, `/setup` (→ model_version), `/predict` ({"tasks": [...]} → {"results": [...]}, one per
task, in order) and `/webhook` (START_TRAINING from LS's "train" button). Tasks alweb created carry `alweb_item`
in their data; tasks added in LS by hand are predicted from their raw text (text projects) and otherwise get an
empty prediction. The prediction's `score` is converted like the sync's, so LS's order is alweb's.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from campaigns.models import Item, Project, TaskType
from campaigns.services.actions import NothingToSelect, cycle_start
from campaigns.services.cycles import CycleConflict
from campaigns.services.features import FeatureError, item_inputs, payload_inputs, project_as_trained
from campaigns.services.inference import model_load, model_score
from engine.scoring import ScoreChunk
from integrations.labelstudio import convert
from integrations.labelstudio.label_config import LabelConfigError, LabelConfigInfo, info_for, parse_label_config
from integrations.labelstudio.sync import ls_model_version
from models_registry.models import ModelStatus, ModelVersion

log = logging.getLogger(__name__)
NO_MODEL = "alweb-none"
# Loading a model from MLflow takes seconds; LS calls /predict in batches, so keep the last few in memory.
_MODELS: OrderedDict[str, Any] = OrderedDict()
_MODELS_LOCK = threading.Lock()
_MODELS_KEPT = 2


def champion(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, is_champion=True, status=ModelStatus.READY).first()


def ml_model_version(project: Project) -> str:
    mv = champion(project)
    return ls_model_version(version=mv.version, cycle_number=0) if mv is not None else NO_MODEL


def _load(mv: ModelVersion) -> Any:

    with _MODELS_LOCK:
        if mv.model_uri in _MODELS:
            _MODELS.move_to_end(mv.model_uri)
            return _MODELS[mv.model_uri]
    model = model_load(model_version=mv)
    with _MODELS_LOCK:
        _MODELS[mv.model_uri] = model
        while len(_MODELS) > _MODELS_KEPT:
            _MODELS.popitem(last=False)
    return model


def _config(project: Project, label_config: Any) -> LabelConfigInfo:
    if isinstance(label_config, str) and label_config:
        try:
            return parse_label_config(label_config, project.task_type)  # type: ignore[arg-type]
        except LabelConfigError:
            pass
    return info_for(project.task_type, list(project.labels))  # type: ignore[arg-type]


def _items_for(project: Project, tasks: Sequence[Mapping[str, Any]]) -> list[Item | None]:
    ids, keys = set(), set()
    for task in tasks:
        data = task.get("data") or {}
        if isinstance(data.get("alweb_item"), int):
            ids.add(data["alweb_item"])
        elif isinstance(data.get("alweb_key"), str):
            keys.add(data["alweb_key"])
    found = Item.objects.filter(project=project).filter(pk__in=ids) | Item.objects.filter(project=project, key__in=keys)
    by_id = {i.pk: i for i in found}
    by_key = {i.key: i for i in by_id.values()}
    out: list[Item | None] = []
    for task in tasks:
        data = task.get("data") or {}
        out.append(by_id.get(data.get("alweb_item")) or by_key.get(data.get("alweb_key")))  # type: ignore[arg-type]
    return out


def _inputs(project: Project, info: LabelConfigInfo, tasks: Sequence[Mapping[str, Any]], model: Any) -> list[Any]:
    """One model input per task, or None where alweb cannot build one. A text project's are the model's own:
    embeddings of its encoder, or token ids from the fine-tuned model's tokenizer."""
    items = _items_for(project, tasks)
    inputs: list[Any] = [None] * len(tasks)
    if project.task_type == TaskType.TEXT_CLASSIFICATION:
        known = [(n, i) for n, i in enumerate(items) if i is not None]
        for (n, _), vec in zip(known, item_inputs(project, [i for _, i in known], model=model), strict=True):
            inputs[n] = vec
        raw = [(n, (t.get("data") or {}).get(info.data_key)) for n, t in enumerate(tasks) if items[n] is None]
        raw = [(n, text) for n, text in raw if isinstance(text, str) and text]
        if raw:  # a task added in LS by hand: embed its text as alweb would
            vectors = payload_inputs(project, [str(t) for _, t in raw], model=model)
            for (n, _), vec in zip(raw, vectors, strict=True):
                inputs[n] = vec
        return inputs
    for n, item in enumerate(items):
        if item is not None:
            try:
                # The project's model input: pixels, or a frozen backbone's cached features.
                inputs[n] = item_inputs(project, [item])[0]
            except FeatureError as exc:
                log.info("project %s: no prediction for item %s: %s", project.pk, item.pk, exc)
    return inputs


def ml_predict(*, project: Project, tasks: Sequence[Mapping[str, Any]], label_config: Any = None) -> dict[str, Any]:
    """LS's /predict answer: one result per task, in order (an empty `results` list when there is no model)."""
    mv = champion(project)
    if mv is None or not tasks:
        # No model yet: LS creates nothing.
        return {"results": []}

    version = ls_model_version(version=mv.version, cycle_number=0)
    info = _config(project, label_config)
    model = _load(mv)
    inputs = _inputs(project_as_trained(project, mv), info, tasks, model)
    usable = [n for n, x in enumerate(inputs) if x is not None]
    results: list[dict[str, Any]] = [{"result": [], "model_version": version} for _ in tasks]
    if usable:
        scored = model_score(
            model=model,
            inputs=np.stack([inputs[n] for n in usable]),
            ids=usable,
            iterations=project.default_mc_iterations,
            heuristic=project.default_heuristic,
            seed=0,
            labels=list(project.labels),
        )
        if scored.boxes is not None:
            _box_results(project, info, tasks, scored, results, version)
            return {"results": results}
        labels = list(project.labels)
        for n, u, lbl in zip(scored.ids, scored.uncertainty, scored.labels, strict=True):
            if lbl < 0:
                continue
            label = labels[int(lbl)]
            results[n] = {
                "result": convert.choice_result(label, from_name=info.from_name, to_name=info.to_name),
                "score": convert.uncertainty_to_ls_score(float(u)),
                "model_version": version,
            }
    return {"results": results}


def _box_results(
    project: Project,
    info: LabelConfigInfo,
    tasks: Sequence[Mapping[str, Any]],
    scored: ScoreChunk,
    results: list[dict[str, Any]],
    version: str,
) -> None:
    """A detector's answer: its boxes as rectanglelabels regions, sized by the item's image (fills `results`)."""
    assert scored.boxes is not None
    items = _items_for(project, tasks)
    for n, u, boxes in zip(scored.ids, scored.uncertainty, scored.boxes, strict=True):
        item = items[n]
        results[n] = {
            "result": convert.fraction_boxes_result(
                boxes,
                image_width=item.media_width if item is not None else None,
                image_height=item.media_height if item is not None else None,
                known_labels=info.labels,
                from_name=info.from_name,
                to_name=info.to_name,
            ),
            "score": convert.uncertainty_to_ls_score(float(u)),
            "model_version": version,
        }


def ml_start_training(*, project: Project) -> dict[str, Any]:
    """LS's "train" (START_TRAINING): start the project's next cycle, whose first step trains."""
    try:
        cycle = cycle_start(project=project)
    except (CycleConflict, NothingToSelect) as exc:
        return {"status": "busy", "detail": str(exc)}
    return {"status": "ok", "job": f"alweb-cycle-{cycle.pk}", "cycle": cycle.number}
