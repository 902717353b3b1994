"""Exports in the admin: what was exported, by whom, how it went, and the download link while the file exists.
View-only: exports are made through the dashboard, the API or `manage.py export_items`, and pruned after
ALWEB_EXPORT_RETENTION_DAYS."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from campaigns.admin.common import ViewOnlyAdmin
from campaigns.models import Export
from campaigns.services.exports import export_download_url


@admin.register(Export)
class ExportAdmin(ViewOnlyAdmin):
    list_display = ["id", "project", "format", "as_of_cycle", "state", "rows", "created_by", "created_at", "download"]
    list_filter = ["state", "format"]
    list_select_related = ["project", "created_by"]
    search_fields = ["project__name"]
    readonly_fields = ["download"]

    @admin.display(description="file")
    def download(self, obj: Export) -> str:
        link = export_download_url(export=obj)
        return format_html('<a href="{}">download</a>', link) if link else "-"
