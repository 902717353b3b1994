"""Projects: settings and the write-only Label Studio key, changed through project_update."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from campaigns.models import Membership, Project
from campaigns.services.media import project_revoke_media_links
from campaigns.services.projects import (
    UPDATABLE_FIELDS,
    check_project_unique,
    clean_ls_connection,
    project_update,
    validate_project_defaults,
)
from integrations.labelstudio.connect import labelstudio_register_ml_backend, ml_backend_url


class MembershipFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        creator = self.instance.owner_id
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            user = data.get("user")
            # The row as it was: the creator's own row must not be handed to someone else either.
            was_creator = form.instance.pk is not None and form.initial.get("user") == creator
            if was_creator and (user is None or user.pk != creator):
                raise ValidationError("The project's creator always stays an owner: their row keeps its user.")
            if user is None or user.pk != creator:
                continue
            if data.get("DELETE") or data.get("role") != Membership.Role.OWNER:
                raise ValidationError("The project's creator always stays an owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    autocomplete_fields = ["user"]
    extra = 0


class ProjectAdminForm(forms.ModelForm):
    # Write-only: the stored key is never rendered into the page, not even masked.
    ls_api_key = forms.CharField(
        label="Label Studio API key",
        required=False,
        strip=True,
        max_length=2048,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current key.",
    )
    clear_ls_api_key = forms.BooleanField(label="Remove the Label Studio key", required=False)
    ls_url = forms.URLField(label="Label Studio URL", required=False, assume_scheme="https")

    class Meta:
        model = Project
        fields = [
            "name",
            "default_heuristic",
            "default_mc_iterations",
            "default_budget",
            "eval_valid_target",
            "eval_test_target",
            "train_on_close",
            "model_config",
            "ls_url",
            "ls_api_key",
            "ls_project_id",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("clear_ls_api_key"):
            data["ls_api_key"] = ""
        elif not data.get("ls_api_key"):
            data["ls_api_key"] = self.instance.ls_api_key
        defaults = (
            "default_heuristic",
            "default_mc_iterations",
            "default_budget",
            "eval_valid_target",
            "eval_test_target",
            "model_config",
        )
        try:
            validate_project_defaults(**{k: data[k] for k in defaults if data.get(k) is not None})
        except ValidationError as exc:
            self.add_error(None, exc)
        # The owner is read-only here, so Django's own unique check skips (owner, name): ask the service, which
        # names the field, before save_model would raise it as a server error.
        candidate = copy.copy(self.instance)
        for name in ("name", "ls_url", "ls_project_id", "ls_api_key"):
            if name in data:
                setattr(candidate, name, data[name])
        try:
            # The service's link rules (allowed URL, a key of the owner's own to link an LS project alweb did not
            # create, the key cleared with a new URL) as form errors, not a server error from save_model.
            clean_ls_connection(project=candidate, previous=self.instance, key_given=self.key_given())
            check_project_unique(candidate)
        except ValidationError as exc:
            self.add_error(None, exc)
        return data

    def key_given(self) -> bool:
        """A key typed in, or the key removed: the empty field otherwise means "keep", not "set this key"."""
        return bool(self.data.get("ls_api_key") or self.data.get("clear_ls_api_key"))


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Projects are created through project_create (API, dashboard), which makes the owner membership and the
    webhook secret; deleting one here would render every item on the confirmation page, so that is the API's too."""

    form = ProjectAdminForm
    inlines = [MembershipInline]
    list_display = ["name", "task_type", "owner", "ls_project_id", "key_is_set", "created_at"]
    list_filter = ["task_type"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["owner", "task_type", "labels", "split_ratios", "ls_pulled_until", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "owner", "task_type", "labels", "split_ratios", "created_at", "updated_at"]}),
        (
            "Cycle defaults",
            {
                "fields": [
                    "default_heuristic",
                    "default_mc_iterations",
                    "default_budget",
                    "model_config",
                    "train_on_close",
                ]
            },
        ),
        (
            "Evaluation sample (empty: the default for the pool size)",
            {"fields": ["eval_valid_target", "eval_test_target"]},
        ),
        ("Annotators (overlap, set in Label Studio too)", {"fields": ["annotators_per_task", "consensus_rule"]}),
        (
            "Label Studio",
            {"fields": ["ls_url", "ls_project_id", "ls_api_key", "clear_ls_api_key", "ls_pulled_until"]},
        ),
    ]

    actions = ["connect_ml_backend", "revoke_media_links"]

    @admin.display(boolean=True, description="LS key set")
    def key_is_set(self, obj: Project) -> bool:
        return bool(obj.ls_api_key)

    @admin.action(description="Connect as ML backend in Label Studio")
    def connect_ml_backend(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        """alweb registers itself as each project's ML backend with its credentials, so nobody handles the secret;
        the same as the API's POST /api/projects/<id>/ml-backend/."""
        for project in queryset:
            try:
                backend = labelstudio_register_ml_backend(project=project)
            except (ValidationError, ConnectionError, RuntimeError) as exc:
                text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.message_user(request, f"{project}: not connected: {text}", level=messages.ERROR)
            else:
                self.message_user(request, f"{project}: connected as ML backend {backend} ({ml_backend_url(project)})")

    @admin.action(description="Revoke the media links handed to Label Studio")
    def revoke_media_links(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            project_revoke_media_links(project=project)
        done = queryset.count()
        self.message_user(request, f"Media links revoked for {done} project(s); the next sync sends new ones.")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        # A simulation's sandboxes are the simulation's (deleted when it ends), not projects to manage here.
        return super().get_queryset(request).filter(sandbox_of__isnull=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Project, form: forms.ModelForm, change: bool) -> None:
        # The admin builds its own form class whose Meta.fields follow the fieldsets: pick the model's fields here.
        changed = [f for f in form.changed_data if f in UPDATABLE_FIELDS and f != "ls_api_key"]
        if isinstance(form, ProjectAdminForm) and form.key_given():
            changed.append("ls_api_key")
        if changed:
            project_update(project=obj, **{f: getattr(obj, f) for f in changed})
