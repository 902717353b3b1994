"""Dashboard forms. They parse what a browser sends (text to numbers, lists, JSON); the services decide what is
valid, and `ServiceErrorsMixin` puts the services' {field: reason} errors next to the field that caused them."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from campaigns.ingest.jsonlimits import JSONLimitError, check_json_text
from campaigns.models import ConsensusRule, Heuristic, Strategy, TaskType

SPLITS = ("train", "valid", "test", "pool")


class ServiceErrorsMixin:
    """Map a service's ValidationError onto the form. `aliases` sends a service field to the form field shown for it;
    anything else lands in the form's non-field errors, prefixed with the field name so it still says what is wrong."""

    aliases: dict[str, str] = {}

    def add_service_errors(self, exc: ValidationError) -> None:
        form: forms.Form = self  # type: ignore[assignment]
        if not hasattr(exc, "error_dict"):
            form.add_error(None, exc)
            return
        for key, errors in exc.message_dict.items():
            field = self.aliases.get(key, key)
            if field in form.fields:
                form.add_error(field, errors)
            else:
                form.add_error(None, [f"{key.replace('_', ' ')}: {e}" for e in errors])


def _json_object(value: str, what: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        check_json_text(value)  # before parsing: deep nesting is a RecursionError in json.loads
    except JSONLimitError as exc:
        raise ValidationError(f"{what} {exc.reason}") from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{what} must be JSON, e.g. {{}}: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(parsed, dict):
        raise ValidationError(f"{what} must be a JSON object, e.g. {{}}")
    return parsed


class ProjectCreateForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=200, help_text="Unique among your projects.")
    task_type = forms.ChoiceField(choices=TaskType.choices, label="Task type")
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="The classes annotators choose from, separated by commas or new lines. Order matters: it is kept.",
    )
    split_train = forms.FloatField(label="Train", min_value=0, max_value=1)
    split_valid = forms.FloatField(label="Validation", min_value=0, max_value=1)
    split_test = forms.FloatField(label="Test", min_value=0, max_value=1)
    split_pool = forms.FloatField(label="Pool", min_value=0, max_value=1)
    default_budget = forms.IntegerField(label="Items per cycle (budget)", initial=100)
    default_heuristic = forms.ChoiceField(
        choices=Heuristic.choices, initial=Heuristic.MARGIN, label="Uncertainty heuristic"
    )
    default_mc_iterations = forms.IntegerField(
        label="MC dropout passes", initial=20, help_text="More passes give steadier scores and take longer."
    )
    eval_valid_target = forms.IntegerField(
        required=False,
        min_value=0,
        label="Validation items to label",
        help_text="An i.i.d. sample no model chooses, sent with the cycles. Empty: 5% of the pool (at least 5 per "
        "class, at most 500); 0: none.",
    )
    eval_test_target = forms.IntegerField(
        required=False,
        min_value=0,
        label="Test items to label",
        help_text="As above; the learning curve is measured on these human labels.",
    )
    annotators_per_task = forms.IntegerField(
        required=False,
        initial=1,
        label="Annotators per task",
        help_text="How many people label each task (Label Studio's overlap); 1: one answer per item.",
    )
    consensus_rule = forms.ChoiceField(
        required=False,
        choices=ConsensusRule.choices,
        initial=ConsensusRule.MAJORITY,
        label="Consensus rule",
        help_text="How several answers become the training label. A ground-truth answer in Label Studio wins.",
    )
    model_config = forms.CharField(
        required=False,
        label="Model settings (JSON)",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='For example {"image_size": 32, "channels": 1, "epochs": 20}. Leave empty for the defaults.',
    )
    ls_url = forms.URLField(
        required=False,
        assume_scheme="http",  # a local Label Studio (127.0.0.1:8080) speaks http
        label="Label Studio URL",
        help_text="For example http://127.0.0.1:8080. You can leave it empty for now.",
    )
    # Write-only: PasswordInput never renders the value back, not even after an error.
    ls_api_key = forms.CharField(
        required=False,
        max_length=2048,
        label="Label Studio API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored on the server and never shown again.",
    )
    ls_project_id = forms.IntegerField(
        required=False,
        min_value=1,
        label="Existing Label Studio project id",
        help_text="Leave empty to let alweb create the Label Studio project on the first sync.",
    )

    aliases = {"split_ratios": "split_pool"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for split in SPLITS:
            self.fields[f"split_{split}"].initial = settings.ALWEB_DEFAULT_SPLIT_RATIOS[split]
            self.fields[f"split_{split}"].widget.attrs["step"] = "0.01"

    def clean_labels(self) -> list[str]:
        # Commas or new lines separate labels; blank entries (a trailing comma) are not labels.
        raw = self.cleaned_data["labels"]
        labels = [part.strip() for part in re.split(r"[,\n]", raw) if part.strip()]
        if not labels:
            raise ValidationError("Give at least one label, e.g. cat, dog.")
        return labels

    def clean_model_config(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["model_config"], "Model settings")

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        kwargs: dict[str, Any] = {
            "name": data["name"],
            "task_type": data["task_type"],
            "labels": data["labels"],
            "split_ratios": {split: data[f"split_{split}"] for split in SPLITS},
            "model_config": data["model_config"],
            "default_budget": data["default_budget"],
            "default_heuristic": data["default_heuristic"],
            "default_mc_iterations": data["default_mc_iterations"],
            "eval_valid_target": data.get("eval_valid_target"),
            "eval_test_target": data.get("eval_test_target"),
            "ls_url": data["ls_url"] or "",
            "ls_api_key": data["ls_api_key"] or "",
        }
        if data.get("ls_project_id") is not None:
            kwargs["ls_project_id"] = data["ls_project_id"]
        # Left empty: the project's defaults (one annotator, majority), as in the API.
        kwargs.update(overlap_values(data))
        return kwargs


def overlap_values(data: dict[str, Any]) -> dict[str, Any]:
    """The overlap fields a person filled in (an empty one keeps the project's value)."""
    return {k: data[k] for k in ("annotators_per_task", "consensus_rule") if data.get(k) not in (None, "")}


class OverlapForm(ServiceErrorsMixin, forms.Form):
    """A project's overlap settings after creation (the agreement page): the service checks the values, as the
    API's project update does."""

    annotators_per_task = ProjectCreateForm.base_fields["annotators_per_task"]
    consensus_rule = ProjectCreateForm.base_fields["consensus_rule"]


class ItemImportForm(forms.Form):
    file = forms.FileField(
        label="File",
        help_text=(
            "CSV, JSON lines or Parquet; a zip of images (with YOLO labels or a COCO JSON file for detection); or a "
            "zip holding one CSV/JSON lines file and the images it names."
        ),
    )
    fmt = forms.ChoiceField(
        required=False,
        label="Format",
        choices=[
            ("", "Guess from the file name"),
            ("csv", "CSV"),
            ("jsonl", "JSON lines"),
            ("parquet", "Parquet"),
            ("images", "Zip of images"),
            ("coco", "COCO JSON"),
        ],
    )
    label_from_dir = forms.BooleanField(
        required=False, label="Zip of images: the folder name is the label", initial=False
    )
    labels_as_ground_truth = forms.BooleanField(
        required=False,
        label="Labels in the file are hidden answers (for simulations), not training labels",
        initial=False,
    )


class CycleStartForm(ServiceErrorsMixin, forms.Form):
    budget = forms.IntegerField(label="Items to send (budget)", help_text="At most this many items go to annotators.")
    threshold = forms.FloatField(
        required=False,
        label="Minimum uncertainty (threshold)",
        help_text="Only items at least this uncertain are sent. Leave empty for no minimum.",
    )
    heuristic = forms.ChoiceField(choices=Heuristic.choices, label="Uncertainty heuristic")
    strategy = forms.ChoiceField(choices=Strategy.choices, initial="topk", label="How to pick among uncertain items")
    strategy_params = forms.CharField(
        required=False,
        label="Strategy options (JSON)",
        widget=forms.TextInput(),
        help_text='Quotas need shares per label, e.g. {"quotas": {"cat": 0.5, "dog": 0.5}}; a first cycle without '
        'a model starts with {"cold_start": "kmeans"} (diverse), "typiclust" or "random".',
    )
    relabel = forms.ChoiceField(
        required=False,
        choices=[("", "New items only"), ("activelab", "New items and re-labels, split by ActiveLab")],
        label="Re-labeling",
        help_text="ActiveLab compares one more label on a labeled item with a new item's first label and spends the "
        "budget where it helps most; re-labels go to Label Studio as review tasks.",
    )
    relabel_max_share = forms.FloatField(
        required=False,
        label="Re-labels: at most this share of the budget",
        help_text="Empty: half of it.",
    )
    mc_iterations = forms.IntegerField(label="MC dropout passes")
    seed = forms.IntegerField(initial=0, label="Random seed", help_text="The same seed replays the same choices.")
    auto_advance = forms.BooleanField(
        required=False,
        initial=True,
        label="Select and send to Label Studio on its own once scored",
        help_text="Untick to review the scores and choose the threshold yourself first.",
    )

    aliases = {"strategy_params": "strategy_params"}

    def clean_strategy_params(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["strategy_params"], "Strategy options")

    def clean(self) -> dict[str, Any]:
        """The re-labeling fields are strategy options (`relabel`, `relabel_max_share`) the service checks."""
        data = super().clean() or {}
        options = data.get("strategy_params")
        if isinstance(options, dict):
            if data.get("relabel"):
                options["relabel"] = data["relabel"]
            if data.get("relabel_max_share") is not None:
                options["relabel_max_share"] = data["relabel_max_share"]
        return data

    def add_service_errors(self, exc: ValidationError) -> None:
        # A re-labeling option's error is said next to its own field, not the JSON options'.
        reasons = getattr(exc, "error_dict", {}).get("strategy_params")
        if reasons and all(str(r.message).startswith("relabel") for r in reasons):
            self.add_error("relabel_max_share", [str(r.message) for r in reasons])
            return
        super().add_service_errors(exc)


class SelectionForm(ServiceErrorsMixin, forms.Form):
    """The cycle page's choice: the slider, the budget and the strategy; used by the live preview and by "select"."""

    threshold = forms.FloatField(required=False, min_value=0, label="Minimum uncertainty (threshold)")
    budget = forms.IntegerField(min_value=1, label="Items to send (budget)")
    strategy = forms.ChoiceField(choices=Strategy.choices, label="How to pick among uncertain items")

    aliases = {"strategy_params": "strategy"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The cycle page renders its errors in a slot the live preview refreshes (out of band), not Django's list.
        self.fields["strategy"].widget.attrs["aria-describedby"] = "err-strategy"
