"""Shapes for cycles, their selection, scores and the project's statistics.

Request serializers check JSON types and ranges only (strict fields: `true` is not a budget, "5" is not a seed), so a
bad value is a 400 naming its field before any service runs; the services still check the business rules (a quota
label that is not in the project, a strategy that needs embeddings) and their `ValidationError`s name the field too.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.api.fields import (
    JSONObjectField,
    StrictBooleanField,
    StrictFloatField,
    StrictIntegerField,
)
from campaigns.models import Cycle, Heuristic, SelectedItem, Selection, Strategy
from campaigns.services.params import MAX_BUDGET, MAX_MC_ITERATIONS, MAX_SEED
from campaigns.states import TERMINAL_STATES
from models_registry.models import ModelVersion

PREVIEW_MAX_SHOW = 100


def _budget(**kwargs: Any) -> StrictIntegerField:
    return StrictIntegerField(
        min_value=1, max_value=MAX_BUDGET, help_text="Maximum number of items to select.", **kwargs
    )


def _threshold(*, omitted: str, **kwargs: Any) -> StrictFloatField:
    return StrictFloatField(
        min_value=0,
        allow_null=True,
        help_text=f"Minimum uncertainty of a selected item; null for no threshold; left out: {omitted}.",
        **kwargs,
    )


def _threshold_quantile(*, omitted: str, **kwargs: Any) -> StrictFloatField:
    return StrictFloatField(
        min_value=0,
        max_value=1,
        allow_null=True,
        help_text="The threshold as a share of the scored pool: 0.2 selects among the 20% most uncertain, whatever "
        "the scale of the scores (they differ by heuristic, class count and model). Not with threshold; "
        f"left out: {omitted}.",
        **kwargs,
    )


def _strategy(**kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=Strategy.choices, **kwargs)


def _strategy_params(**kwargs: Any) -> JSONObjectField:
    return JSONObjectField(
        max_bytes=16384,
        help_text='Strategy options, e.g. {"power": 2} (power), {"quotas": {"cat": 0.5}} (quota), '
        '{"candidates_factor": 10} (diverse: its most uncertain candidates; coreset, badge: a uniform sample, 50 by '
        'default), {"cold_start": "kmeans"}, "typiclust" or "random" (a cycle with no model yet; kmeans by default '
        'for diverse); any strategy: {"relabel": "activelab", "relabel_max_share": 0.5} splits the budget between '
        "new items and labeled items to label again (ActiveLab scores decide; re-labels go to Label Studio as review "
        "tasks, at most that share of the budget).",
        **kwargs,
    )


def _seed(**kwargs: Any) -> StrictIntegerField:
    return StrictIntegerField(min_value=0, max_value=MAX_SEED, **kwargs)


class ProgressSerializer(serializers.Serializer):
    stage = serializers.CharField(help_text="The state the cycle is in (training, scoring, labeling...).")
    done = serializers.IntegerField(
        help_text="Epochs run, items scored, items sent, or (labeling) selected items answered; ends at total."
    )
    total = serializers.IntegerField(help_text="0 while the stage has not reported its size yet.")
    eta_s = serializers.FloatField(allow_null=True, help_text="Seconds left at the rate so far; null if unknown.")
    updated_at = serializers.CharField(allow_null=True)


class ModelVersionBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "version", "kind", "status", "architecture", "label_count"]
        read_only_fields = fields


class CycleSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    model_version = ModelVersionBriefSerializer(read_only=True, allow_null=True)
    selection_size = serializers.SerializerMethodField(help_text="Items selected; null until the cycle selects.")
    score_count = serializers.SerializerMethodField(help_text="Items scored, once scoring has finished.")
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Cycle
        fields = [
            "id",
            "number",
            "state",
            "progress",
            "budget",
            "threshold",
            "threshold_quantile",
            "heuristic",
            "mc_iterations",
            "strategy",
            "strategy_params",
            "seed",
            "auto_advance",
            "model_version",
            "selection_size",
            "score_count",
            "failure_reason",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: Cycle) -> dict[str, Any]:
        # The pipeline writes progress as free JSON; the API promises these five keys whatever was stored. The
        # stage is always the state the cycle is in; counts stored by another stage (a stage not yet reported)
        # are not passed off as this one's, except in a final state, which keeps the last stage's counts.
        stored = obj.progress or {}
        current = stored.get("stage") == obj.state or obj.state in TERMINAL_STATES
        return {
            "stage": obj.state,
            "done": int(stored.get("done") or 0) if current else 0,
            "total": int(stored.get("total") or 0) if current else 0,
            "eta_s": stored.get("eta_s") if current else None,
            "updated_at": stored.get("updated_at"),
        }

    def get_selection_size(self, obj: Cycle) -> int | None:
        # A reverse one-to-one: joined by the list's select_related, and None (not an error) when there is none.
        selection = getattr(obj, "selection", None)
        return selection.size if selection is not None else None

    def get_score_count(self, obj: Cycle) -> int:
        return int((obj.score_stats or {}).get("count") or 0)


class CycleStartSerializer(serializers.Serializer):
    """Every field is optional: budget, heuristic and mc_iterations default to the project's defaults."""

    budget = _budget(required=False)
    threshold = _threshold(omitted="no threshold", required=False)
    threshold_quantile = _threshold_quantile(omitted="none", required=False)
    heuristic = serializers.ChoiceField(choices=Heuristic.choices, required=False)
    mc_iterations = StrictIntegerField(min_value=1, max_value=MAX_MC_ITERATIONS, required=False)
    strategy = _strategy(required=False)
    strategy_params = _strategy_params(required=False)
    seed = _seed(required=False)
    auto_advance = StrictBooleanField(
        required=False, help_text="Select and sync on its own after scoring (default true); false waits in scored."
    )


class SelectionRequestSerializer(serializers.Serializer):
    """Parameters of a selection; each left out takes the cycle's own value."""

    budget = _budget(required=False)
    threshold = _threshold(omitted="the cycle's threshold", required=False)
    threshold_quantile = _threshold_quantile(omitted="the cycle's", required=False)
    strategy = _strategy(required=False)
    strategy_params = _strategy_params(
        required=False,
    )


class PreviewRequestSerializer(SelectionRequestSerializer):
    seed = _seed(required=False, help_text="Seed of the stochastic strategies; default the cycle's.")
    show = StrictIntegerField(
        min_value=0, max_value=PREVIEW_MAX_SHOW, default=20, help_text="How many of the picks to return."
    )


class HistogramSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField(), help_text="Bin edges: one more than counts.")
    counts = serializers.ListField(child=serializers.IntegerField())
    count = serializers.IntegerField()
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    mean = serializers.FloatField(allow_null=True)


class HistogramQuerySerializer(serializers.Serializer):
    bins = serializers.IntegerField(min_value=1, max_value=200, default=50)


class PickSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    key = serializers.CharField()
    uncertainty = serializers.FloatField(allow_null=True)
    predicted_label = serializers.CharField(allow_blank=True)
    confidence = serializers.FloatField(allow_null=True)


class PreviewSerializer(serializers.Serializer):
    qualifying = serializers.IntegerField(help_text="Scored items at or above the threshold.")
    would_select = serializers.IntegerField(help_text="Items the budget and strategy would select.")
    threshold = serializers.FloatField(
        allow_null=True, help_text="The minimum uncertainty applied (a quantile resolved)."
    )
    threshold_quantile = serializers.FloatField(allow_null=True)
    budget = serializers.IntegerField()
    strategy = serializers.CharField()
    histogram = HistogramSerializer(help_text="The scores' distribution: min and max give the threshold's scale.")
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="E.g. a threshold that lets fewer items through than the budget."
    )
    items = PickSerializer(many=True, help_text="The first picks, in rank order.")


class SelectionSerializer(serializers.ModelSerializer):
    model_version = ModelVersionBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Selection
        fields = ["id", "strategy", "params", "size", "model_version", "created_at"]
        read_only_fields = fields


class SelectedItemSerializer(serializers.ModelSerializer):
    # Annotated by `selectors.selected_items_for`: the item's key and label without loading the item.
    item = serializers.IntegerField(source="item_id", read_only=True)
    key = serializers.CharField(read_only=True)
    # The item's current label (null until answered). DRF pops declared fields off the class, so shadowing
    # Field.label here is only a typing matter.
    label = serializers.JSONField(source="item_label", read_only=True, allow_null=True)  # type: ignore[assignment]
    ls_task_id = serializers.SerializerMethodField(help_text="The item's Label Studio task, once synced.")

    class Meta:
        model = SelectedItem
        fields = [
            "rank",
            "item",
            "key",
            "uncertainty",
            "predicted_label",
            "confidence",
            "label",
            "ls_task_id",
            "sync_state",
            "synced_at",
            "sync_error",
        ]
        read_only_fields = fields

    def get_ls_task_id(self, obj: SelectedItem) -> int | None:
        # The selection row records the task it created; an item synced by an earlier cycle keeps its own task.
        return obj.ls_task_id or getattr(obj, "item_ls_task_id", None)


class SelectionPageSerializer(serializers.Serializer):
    selection = SelectionSerializer()
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = SelectedItemSerializer(many=True)


class ScoreSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    key = serializers.CharField()
    uncertainty = serializers.FloatField()
    heuristic = serializers.CharField()
    predicted_label = serializers.CharField(allow_blank=True)
    confidence = serializers.FloatField(allow_null=True)


class ScoreFilterSerializer(serializers.Serializer):
    min_uncertainty = serializers.FloatField(required=False, help_text="Only scores at or above this.")
    max_uncertainty = serializers.FloatField(required=False, help_text="Only scores at or below this.")
    predicted_label = serializers.CharField(max_length=200, required=False, allow_blank=True)
    ordering = serializers.ChoiceField(
        choices=["-uncertainty", "uncertainty"], default="-uncertainty", help_text="Most uncertain first by default."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        lo, hi = attrs.get("min_uncertainty"), attrs.get("max_uncertainty")
        if lo is not None and hi is not None and lo > hi:
            raise serializers.ValidationError({"max_uncertainty": "Must be at least min_uncertainty."})
        return attrs


class ItemCountSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    labeled = serializers.IntegerField()


class EvaluationStatusSerializer(serializers.Serializer):
    split = serializers.CharField()
    target = serializers.IntegerField(help_text="Items people should label in this split.")
    labeled = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Out in Label Studio, not labeled yet.")


class ProjectStatsSerializer(serializers.Serializer):
    by_split = serializers.DictField(child=ItemCountSerializer(), help_text="Items per split (train, valid, ...).")
    total = serializers.IntegerField()
    labeled = serializers.IntegerField(help_text="Every labeled item, evaluation labels included.")
    evaluation = EvaluationStatusSerializer(many=True, help_text="The evaluation sample: validation and test.")


class LearningCurvePointSerializer(serializers.Serializer):
    cycle = serializers.IntegerField(help_text="Cycle number.")
    after_close = serializers.BooleanField(
        help_text="Trained when the cycle closed, on every label it brought (the curve ends at the labels spent)."
    )
    model_version = serializers.IntegerField(help_text="Model version number.")
    labels = serializers.IntegerField(help_text="Labels the model was trained on.")
    labels_spent = serializers.IntegerField(
        help_text="Every label paid for at this model's time: training + validation + test (the curve's x axis)."
    )
    valid_labels = serializers.IntegerField(help_text="Validation labels (model selection: early stopping, champion).")
    test_labels = serializers.IntegerField(help_text="Test labels the metrics below are measured on.")
    meaningful = serializers.BooleanField(
        help_text="Enough human test labels for the metrics to mean something (at least 30)."
    )
    accuracy = serializers.FloatField(allow_null=True, help_text="Test accuracy (human test labels only).")
    macro_f1 = serializers.FloatField(allow_null=True, help_text="Test macro-F1 (human test labels only).")
    accuracy_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="95% bootstrap interval [low, high]."
    )
    macro_f1_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="95% bootstrap interval [low, high]."
    )
    per_class_f1 = serializers.DictField(child=serializers.FloatField(allow_null=True))
    per_class = serializers.DictField(
        child=serializers.DictField(),
        help_text="Per label: precision, recall, f1, support (test). The confusion matrix's rows are true classes.",
    )
    valid_accuracy = serializers.FloatField(allow_null=True)
    map = serializers.FloatField(allow_null=True, help_text="Detection: test mAP@0.5:0.95 (COCO), else null.")
    map_50 = serializers.FloatField(allow_null=True, help_text="Detection: test mAP@0.5 (COCO), else null.")
    per_class_ap50 = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="Detection: AP@0.5 per label on the test split (null for a label without a test box).",
    )
