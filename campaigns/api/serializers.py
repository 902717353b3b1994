"""Request and response shapes. Serializers check shape and types only; business rules live in the services.

The Label Studio key is write-only (`ls_api_key`) and the webhook secret is never serialized at all: a response says
only whether a key is set.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from campaigns.api.fields import (
    JSONObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from campaigns.ingest.rows import SPLITS
from campaigns.ingest.tiling import parse_tile
from campaigns.models import (
    MAX_ANNOTATORS_PER_TASK,
    Annotation,
    ConsensusRule,
    Heuristic,
    Item,
    ItemState,
    Membership,
    Project,
    Split,
    TaskType,
)
from campaigns.services.items import FORMATS
from campaigns.services.params import MAX_BUDGET, MAX_MC_ITERATIONS
from campaigns.services.training import EXTERNAL_KINDS
from integrations.labelstudio.connect import RELEASE_MODES, RELEASE_TASKS
from models_registry.models import ModelVersion


class ProjectSerializer(serializers.ModelSerializer):
    name = StrictCharField(max_length=200)
    task_type = serializers.ChoiceField(choices=TaskType.choices)
    labels = serializers.ListField(
        child=StrictCharField(max_length=200), min_length=1, max_length=1000, help_text="Ordered label names."
    )
    split_ratios = serializers.DictField(
        child=StrictFloatField(min_value=0, max_value=1),
        required=False,
        help_text=f"Share of imported items per split ({', '.join(SPLITS)}), summing to 1.",
    )
    model_config = JSONObjectField(required=False, help_text='Engine options, e.g. {"image_size": 32}.')
    default_heuristic = serializers.ChoiceField(choices=Heuristic.choices, required=False)
    default_mc_iterations = StrictIntegerField(min_value=1, max_value=MAX_MC_ITERATIONS, required=False)
    default_budget = StrictIntegerField(min_value=1, max_value=MAX_BUDGET, required=False)
    eval_valid_target = StrictIntegerField(
        min_value=0,
        max_value=MAX_BUDGET,
        allow_null=True,
        required=False,
        help_text="Validation items people should label (an i.i.d. sample no model chooses, sent with the cycles); "
        "null: 5% of the pool, at least 5 per class, at most 500; 0: none.",
    )
    train_on_close = StrictBooleanField(
        required=False,
        help_text="When a cycle closes, train once more on every label so far, so the learning curve ends at the "
        "labels spent (default true).",
    )
    eval_test_target = StrictIntegerField(
        min_value=0,
        max_value=MAX_BUDGET,
        allow_null=True,
        required=False,
        help_text="Test items people should label, as eval_valid_target; the learning curve is measured on them.",
    )
    annotators_per_task = StrictIntegerField(
        min_value=1,
        max_value=MAX_ANNOTATORS_PER_TASK,
        required=False,
        help_text="How many annotators label each task (Label Studio's maximum annotations, set there for you).",
    )
    consensus_rule = serializers.ChoiceField(
        choices=ConsensusRule.choices,
        required=False,
        help_text="How their answers become the training label: majority (from the first answer) or quorum (once "
        "more than half of annotators_per_task agree). A ground-truth answer in Label Studio always wins.",
    )
    ls_url = serializers.URLField(max_length=200, allow_blank=True, required=False)
    ls_api_key = StrictCharField(
        max_length=2048,
        allow_blank=True,
        required=False,
        write_only=True,
        style={"input_type": "password"},
        help_text="Label Studio access token. Write-only: never returned; see ls_api_key_set.",
    )
    ls_api_key_set = serializers.SerializerMethodField()
    ls_project_id = StrictIntegerField(min_value=1, max_value=2**31 - 1, allow_null=True, required=False)
    owner = serializers.CharField(source="owner.username", read_only=True)
    role = serializers.SerializerMethodField(help_text="Your role in this project: owner or member.")

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "task_type",
            "labels",
            "split_ratios",
            "model_config",
            "default_heuristic",
            "default_mc_iterations",
            "default_budget",
            "eval_valid_target",
            "eval_test_target",
            "train_on_close",
            "annotators_per_task",
            "consensus_rule",
            "ls_url",
            "ls_api_key",
            "ls_api_key_set",
            "ls_project_id",
            "ls_linked",
            "ls_pulled_until",
            "owner",
            "role",
            "created_at",
            "updated_at",
        ]
        # ls_linked: alweb has checked the LS project's labeling config and registered its webhook (it is cleared
        # when the connection changes, and set again by the next sync or pull).
        read_only_fields = ["id", "ls_linked", "ls_pulled_until", "created_at", "updated_at"]
        # No validators generated from the model's unique constraints: project_create/project_update check them and
        # name the field, and DRF's version would make ls_url and ls_project_id required.
        validators: list[Any] = []

    def get_ls_api_key_set(self, obj: Project) -> bool:
        return bool(obj.ls_api_key)

    def get_role(self, obj: Project) -> str:
        return getattr(obj, "user_role", "") or ""


class ProjectDeleteSerializer(serializers.Serializer):
    label_studio = serializers.ChoiceField(
        choices=RELEASE_MODES,
        default=RELEASE_TASKS,
        help_text="What to delete in Label Studio first: the tasks alweb created (default), the whole Label Studio "
        "project (only one alweb created), or nothing (keep).",
    )


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role"]
        read_only_fields = fields


class MembershipWriteSerializer(serializers.Serializer):
    """Add a member, or change a member's role: the same request either way."""

    username = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

    def validate_username(self, value: str) -> Any:
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError("No user with this username.")
        return user


class ItemSerializer(serializers.ModelSerializer):
    # The storage name of the item's file; Label Studio gets signed URLs from the adapter, not from here.
    media = serializers.CharField(source="media.name", read_only=True, allow_blank=True)

    class Meta:
        model = Item
        # ground_truth is left out on purpose: it is the hidden answer used by evaluation and simulation.
        fields = [
            "id",
            "key",
            "split",
            "state",
            "text",
            "media",
            "url",
            "media_width",
            "media_height",
            "label",
            "label_source",
            "metadata",
            "source",
            "ls_task_id",
            "label_error",
            "created_at",
        ]
        read_only_fields = fields


class ItemFilterSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False)
    labeled = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="yes or no")
    state = serializers.ChoiceField(choices=ItemState.choices, required=False)
    key = serializers.CharField(max_length=512, required=False, help_text="Exact key.")
    search = serializers.CharField(max_length=512, required=False, help_text="Substring of the key.")


class ItemImportSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV, JSONL, or a zip of images (for detection: with YOLO labels, or a COCO JSON and its images)."
    )
    format = serializers.ChoiceField(choices=FORMATS, required=False, help_text="Default: from the file name.")
    labels_from_folders = serializers.BooleanField(default=False, help_text="Label = first folder of each image.")
    as_ground_truth = serializers.BooleanField(default=False, help_text="Store labels as hidden ground truth.")
    tile = serializers.CharField(required=False, max_length=16, help_text="Cut each image in COLSxROWS tiles: 6x4.")

    def validate_tile(self, value: str) -> tuple[int, int]:
        try:
            return parse_tile(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class ImportConflictSerializer(serializers.Serializer):
    file = serializers.CharField()
    line = serializers.JSONField(help_text="Line number, or the entry name in an archive.")
    key = serializers.CharField()
    field = serializers.CharField(help_text="label, split or key")
    reason = serializers.CharField()


class ImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField(help_text="New items.")
    unchanged = serializers.IntegerField(help_text="Rows for items already there that changed nothing.")
    labeled = serializers.IntegerField(
        help_text="Labels applied: new items with a label, and items already there that had none."
    )
    files_stored = serializers.IntegerField()
    conflicts = serializers.IntegerField(
        help_text="Rows whose label or split differs from the existing item's: reported, never applied."
    )
    conflict_rows = ImportConflictSerializer(many=True, help_text="The first 100 conflicts, row by row.")


class ImportErrorSerializer(serializers.Serializer):
    file = serializers.CharField()
    line = serializers.JSONField(allow_null=True, help_text="Line number, or the entry name in an archive.")
    field = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class AnnotationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Annotation
        fields = [
            "id",
            "item",
            "ls_annotation_id",
            "ls_task_id",
            "annotator",
            "result",
            "value",
            "lead_time",
            "was_cancelled",
            "ground_truth",
            "deleted_at",
            "error",
            "ls_created_at",
            "ls_updated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AnnotationFilterSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    annotator = serializers.CharField(max_length=254, required=False)
    deleted = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="yes or no")


class ExternalModelSerializer(serializers.Serializer):
    """Register an MLflow pyfunc alweb scores with but does not train (e.g. a detector)."""

    model_uri = StrictCharField(max_length=1000, help_text="runs:/<run id>/<path> or models:/<name or id>[/<version>]")
    kind = serializers.ChoiceField(choices=EXTERNAL_KINDS)


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "version",
            "kind",
            "status",
            "architecture",
            "mlflow_run_id",
            "model_uri",
            "registered_name",
            "registered_version",
            "is_champion",
            "label_count",
            "metrics",
            "params",
            "failure_reason",
            "created_at",
        ]
        read_only_fields = fields
