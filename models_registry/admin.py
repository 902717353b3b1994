"""Model versions in the admin: view-only. They mirror MLflow, and the champion alias and status are changed there
through the registry adapter, not by editing a row here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from models_registry.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "kind",
        "status",
        "architecture",
        "is_champion",
        "label_count",
        "accuracy",
        "macro_f1",
        "registered_name",
        "registered_version",
        "created_at",
    ]
    list_filter = ["project", "status", "kind", "is_champion"]
    list_select_related = ["project"]
    search_fields = ["registered_name", "mlflow_run_id"]
    raw_id_fields = ["project"]

    @admin.display(description="accuracy")
    def accuracy(self, obj: ModelVersion) -> Any:
        return (obj.metrics or {}).get("accuracy")

    @admin.display(description="macro F1")
    def macro_f1(self, obj: ModelVersion) -> Any:
        return (obj.metrics or {}).get("macro_f1")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
