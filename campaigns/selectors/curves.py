"""The learning curve (one point per trained model version) and the model versions behind it."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import Any

from django.db.models import QuerySet

from campaigns.models import Cycle, Project
from campaigns.states import CycleState
from models_registry.models import ModelStatus, ModelVersion

# Below this many human test labels a point's accuracy moves by several points from one item to the next (a 95%
# interval wider than ±15 points): the dashboard and API say so rather than draw a curve to read trends into.
CURVE_MIN_TEST_LABELS = 30


def project_learning_curve(*, project: Project) -> list[dict[str, Any]]:
    """One point per model version people labeled with, or trained when a cycle closed, in version order: labels
    spent (training, validation, test) and test metrics from human test labels, with 95% bootstrap intervals and
    per-class precision, recall, F1 and support."""
    points = []
    # Which cycles used each version: a version only cancelled cycles used is no point of the curve (nobody labeled
    # with it); a closing version (trained when its cycle closed) is one, even before a next cycle starts from it.
    used: dict[int, list[int]] = defaultdict(list)
    for number, state, mv_id in Cycle.objects.filter(project=project, model_version__isnull=False).values_list(
        "number", "state", "model_version_id"
    ):
        if state != CycleState.CANCELLED:
            used[mv_id].append(number)
    versions = ModelVersion.objects.filter(project=project, status=ModelStatus.READY).order_by("version")
    for mv in versions:
        closing = bool((mv.params or {}).get("closing"))
        if not closing and not used.get(mv.pk):
            continue
        number = int(mv.params["cycle"]) if closing else min(used[mv.pk])
        metrics = mv.metrics or {}
        spent = metrics.get("labels") or {}
        valid, test = int(spent.get("valid", 0)), int(spent.get("test", 0))
        points.append(
            {
                "cycle": number,
                "after_close": closing,
                "model_version": mv.version,
                "labels": mv.label_count,
                # Every label paid for at this model's time: training + validation + test (the curve's x axis).
                "labels_spent": mv.label_count + valid + test,
                "valid_labels": valid,
                "test_labels": test,
                # Enough human test labels for the figure to mean something; fewer: the dashboard says so instead.
                "meaningful": test >= CURVE_MIN_TEST_LABELS,
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "accuracy_ci": metrics.get("accuracy_ci"),
                "macro_f1_ci": metrics.get("macro_f1_ci"),
                "per_class_f1": metrics.get("per_class_f1", {}),
                "per_class": metrics.get("per_class", {}),
                "valid_accuracy": (metrics.get("valid") or {}).get("accuracy"),
                # Detection projects: COCO mAP on the human test labels (their accuracy and F1 are None).
                "map": metrics.get("map"),
                "map_50": metrics.get("map_50"),
                "per_class_ap50": metrics.get("per_class_ap50", {}),
            }
        )
    return points


def model_versions_for_project(*, project: Project, newest_first: bool = False) -> QuerySet[ModelVersion]:
    """The project's model versions by version number (newest first for the dashboard: the model in use is the one
    people look for)."""
    return ModelVersion.objects.filter(project=project).order_by("-version" if newest_first else "version")


# A stopping suggestion needs this many trained models, and this small a gain (in accuracy or macro-F1 points) over
# each of the last STOP_WINDOW cycles: one flat cycle is noise, two in a row is a trend worth telling the lead about.
STOP_WINDOW = 2


STOP_MIN_GAIN = 0.005


def curve_stopping_suggestion(*, curve: list[dict[str, Any]]) -> str | None:
    """Plain-language advice once the learning curve flattens: the last STOP_WINDOW cycles each gained less than
    STOP_MIN_GAIN in both accuracy and macro-F1. A suggestion, never an automatic stop."""
    points = [p for p in curve if p.get("accuracy") is not None]
    if len(points) < STOP_WINDOW + 1:
        return None
    recent = points[-(STOP_WINDOW + 1) :]
    for before, after in pairwise(recent):
        for metric in ("accuracy", "macro_f1"):
            if before.get(metric) is None or after.get(metric) is None:
                return None
            if after[metric] - before[metric] >= STOP_MIN_GAIN:
                return None
    last = points[-1]
    return (
        f"The last {STOP_WINDOW} cycles improved accuracy and macro-F1 by less than {STOP_MIN_GAIN * 100:.1f} points "
        f"each (accuracy {last['accuracy']:.1%} with {last['labels']} labels). More labels may no longer pay off: "
        "consider stopping, or changing the model or heuristic."
    )
