"""Backbone pretraining runs in the admin: which project's trunk was pretrained on how many images, how far a run
got and why one failed. Requested through the dashboard or the API; the admin only reads."""

from __future__ import annotations

from django.contrib import admin

from campaigns.admin.common import ViewOnlyAdmin
from campaigns.models import BackbonePretraining


@admin.register(BackbonePretraining)
class BackbonePretrainingAdmin(ViewOnlyAdmin):
    list_display = ["id", "project", "state", "images", "done", "backbone", "model_uri", "created_at"]
    list_filter = ["state"]
    list_select_related = ["project", "created_by"]
    search_fields = ["project__name", "backbone"]

    @admin.display(description="progress")
    def done(self, obj: BackbonePretraining) -> str:
        return f"{obj.progress.get('done', 0)} / {obj.progress.get('total', '?')}"
