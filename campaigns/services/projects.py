"""Project writes: creation and update with validated labels, split ratios and defaults; membership; deletion."""

from __future__ import annotations

import copy
import secrets
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns.ingest.rows import validate_split_ratios
from campaigns.models import (
    MAX_ANNOTATORS_PER_TASK,
    ConsensusRule,
    Cycle,
    Heuristic,
    Item,
    Membership,
    Project,
    TaskType,
)
from campaigns.services.feature_fanout import feature_key, features_request
from campaigns.services.model_config import model_config_problem
from campaigns.services.params import MAX_BUDGET, MAX_MC_ITERATIONS, passes_problem
from campaigns.services.queue import PROJECT_OVERLAP, enqueue_on_commit
from integrations.labelstudio.addresses import LINK_NEEDS_OWN_KEY, AddressError, allowed_ls_url, normalize_ls_url

# The Label Studio connection: only project owners may change it (checked by the API and admin).
LS_CONNECTION_FIELDS = ("ls_url", "ls_api_key", "ls_project_id")
UPDATABLE_FIELDS = frozenset(
    {
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
        *LS_CONNECTION_FIELDS,
    }
)


def validate_labels(labels: Any) -> list[str]:
    if not isinstance(labels, list) or not labels:
        raise ValidationError({"labels": "must be a non-empty list of label names"})
    clean = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise ValidationError({"labels": f"every label must be a non-empty string, got {label!r}"})
        if len(label) > 200:
            raise ValidationError({"labels": f"label {label[:20]!r}... is longer than 200 characters"})
        clean.append(label.strip())
    if len(set(clean)) != len(clean):
        raise ValidationError({"labels": "labels must be unique"})
    return clean


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# model_config keys of the text model only: on another task type they would be stored and silently ignored.
TEXT_ONLY_KEYS = ("encoder", "finetune", "mc_layers")


def validate_project_defaults(*, task_type: str | None = None, **fields: Any) -> None:
    """Raise ValidationError {field: reason} for cycle defaults out of range or of the wrong type (None = not given);
    with `task_type`, model_config keys that task type's model does not read are refused too."""
    errors: dict[str, str] = {}
    budget = fields.get("default_budget")
    if budget is not None and (not _is_int(budget) or not 1 <= budget <= MAX_BUDGET):
        errors["default_budget"] = f"must be an integer between 1 and {MAX_BUDGET}"
    mc = fields.get("default_mc_iterations")
    if mc is not None and (not _is_int(mc) or not 1 <= mc <= MAX_MC_ITERATIONS):
        errors["default_mc_iterations"] = f"must be an integer between 1 and {MAX_MC_ITERATIONS}"
    for name in ("eval_valid_target", "eval_test_target"):
        target = fields.get(name)
        if target is not None and (not _is_int(target) or not 0 <= target <= MAX_BUDGET):
            errors[name] = f"must be an integer between 0 and {MAX_BUDGET} (or null for the default)"
    heuristic = fields.get("default_heuristic")
    if heuristic is not None and heuristic not in Heuristic.values:
        errors["default_heuristic"] = f"must be one of {', '.join(Heuristic.values)}"
    if "default_mc_iterations" not in errors and "default_heuristic" not in errors:
        reason = passes_problem(
            heuristic if heuristic is not None else Project._meta.get_field("default_heuristic").get_default(),
            mc if mc is not None else Project._meta.get_field("default_mc_iterations").get_default(),
        )
        if reason:
            errors["default_mc_iterations"] = reason
    overlap = fields.get("annotators_per_task")
    if overlap is not None and (not _is_int(overlap) or not 1 <= overlap <= MAX_ANNOTATORS_PER_TASK):
        errors["annotators_per_task"] = f"must be an integer between 1 and {MAX_ANNOTATORS_PER_TASK}"
    rule = fields.get("consensus_rule")
    if rule is not None and rule not in ConsensusRule.values:
        errors["consensus_rule"] = f"must be one of {', '.join(ConsensusRule.values)}"
    config = fields.get("model_config")
    if config is not None and (problem := model_config_problem(config)):
        errors["model_config"] = problem
    text_only = [k for k in TEXT_ONLY_KEYS if isinstance(config, dict) and k in config]
    if text_only and "model_config" not in errors and task_type not in (None, TaskType.TEXT_CLASSIFICATION):
        errors["model_config"] = f"{text_only[0]} is for text projects only (this project's task is {task_type})"
    if errors:
        raise ValidationError(errors)


def check_project_unique(project: Project) -> None:
    """Name the field a unique constraint would reject, instead of a bare IntegrityError or '__all__' message."""
    others = Project.objects.exclude(pk=project.pk)
    if others.filter(owner_id=project.owner_id, name=project.name).exists():
        raise ValidationError({"name": "you already own a project with this name"})
    if (
        project.ls_project_id is not None
        and others.filter(ls_url=project.ls_url, ls_project_id=project.ls_project_id).exists()
    ):
        raise ValidationError({"ls_project_id": "another alweb project is already linked to this Label Studio project"})


def _effective_ls_url(url: str) -> str | None:
    """The Label Studio a stored `ls_url` reaches (empty: the server's); None for a legacy value that no longer
    parses, which then counts as changed."""
    try:
        return normalize_ls_url(url) or normalize_ls_url(settings.LABEL_STUDIO_URL or "")
    except AddressError:
        return None


def clean_ls_connection(*, project: Project, previous: Project | None, key_given: bool) -> list[str]:
    """Normalise and check the Label Studio connection `project` is about to be saved with (`previous`: as stored,
    None on create). Returns the fields this changed beyond the caller's (`ls_url` filled, `ls_api_key` cleared).

    - `ls_url` is normalised (one spelling per server: uniqueness and every comparison see the same string) and
      must be the server's Label Studio or in ALWEB_LS_ALLOWED_URLS.
    - The stored key is cleared when the URL changes, unless a new one comes with it: a key belongs to the server
      that issued it and must never be sent to another. A URL other than the server's needs a key.
    - A newly set LS project (another id, or the same id on another server) needs the owner's own key: the
      server's key opens every project on its Label Studio, so with it a member could link, read and write into
      someone else's. alweb links the projects it creates itself (`labelstudio_connect_project`), not through here.
    """
    extra: list[str] = []
    server = normalize_ls_url(settings.LABEL_STUDIO_URL or "")
    try:
        url = allowed_ls_url(project.ls_url, server_url=server, allowed=settings.ALWEB_LS_ALLOWED_URLS)
        project.ls_url = normalize_ls_url(project.ls_url)
    except AddressError as exc:
        raise ValidationError({"ls_url": str(exc)}) from None
    if project.ls_project_id is not None and not project.ls_url:
        # Pinned to the server the id belongs to: "" and the server's URL must not be two spellings of one link.
        project.ls_url = url
        extra.append("ls_url")
    url_changed = previous is None or url != _effective_ls_url(previous.ls_url)
    if previous is not None and url_changed and not key_given and project.ls_api_key:
        project.ls_api_key = ""
        extra.append("ls_api_key")
    if url_changed and url != server and not project.ls_api_key:
        raise ValidationError({"ls_api_key": f"this Label Studio ({url}) is not the server's: give its API key"})
    linked_before = None if previous is None else (_effective_ls_url(previous.ls_url), previous.ls_project_id)
    if project.ls_project_id is not None and (url, project.ls_project_id) != linked_before and not project.ls_api_key:
        raise ValidationError({"ls_project_id": LINK_NEEDS_OWN_KEY})
    return extra


def _clean_and_save(project: Project, **kwargs: Any) -> None:
    check_project_unique(project)
    project.full_clean(exclude=["owner"], validate_constraints=True)
    try:
        with transaction.atomic():
            project.save(**kwargs)
    except IntegrityError as exc:
        # A concurrent create or update won the race between the check above and the save.
        check_project_unique(project)
        raise ValidationError({"name": "conflicts with another project"}) from exc


@transaction.atomic
def project_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    task_type: str,
    labels: list[str],
    split_ratios: dict[str, float] | None = None,
    model_config: dict[str, Any] | None = None,
    **options: Any,
) -> Project:
    """Create a project owned by `owner` (who becomes its first member, role owner)."""
    if task_type not in TaskType.values:
        raise ValidationError({"task_type": f"must be one of {', '.join(TaskType.values)}"})
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": "must not be empty"})
    validate_project_defaults(task_type=task_type, model_config=model_config, **options)
    project = Project(
        owner=cast(User, owner),
        name=name.strip(),
        task_type=task_type,
        labels=validate_labels(labels),
        model_config=model_config or {},
        ls_webhook_secret=secrets.token_urlsafe(32),
        **options,
    )
    if split_ratios is not None:
        try:
            project.split_ratios = validate_split_ratios(split_ratios)
        except ValueError as exc:
            raise ValidationError({"split_ratios": str(exc)}) from exc
    clean_ls_connection(project=project, previous=None, key_given=bool(project.ls_api_key))
    _clean_and_save(project)
    Membership.objects.create(project=project, user=cast(User, owner), role=Membership.Role.OWNER)
    return project


@transaction.atomic
def project_update(*, project: Project, **changes: Any) -> Project:
    """Change a project's settings. Once items exist, what they were imported against stays put.

    The task type and split ratios are frozen then (a split is a function of the key and the ratios at import, and
    items hold labels of the task type), and labels may only be appended: models and Label Studio address classes by
    position, so renaming, removing or reordering one would silently relabel what is stored.
    """
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"project_update got fields it cannot change: {', '.join(sorted(unknown))}")
    project = Project.objects.select_for_update().get(pk=project.pk)
    has_items = Item.objects.filter(project=project).exists()
    if "name" in changes:
        if not isinstance(changes["name"], str) or not changes["name"].strip():
            raise ValidationError({"name": "must not be empty"})
        changes["name"] = changes["name"].strip()
    if "task_type" in changes:
        if changes["task_type"] not in TaskType.values:
            raise ValidationError({"task_type": f"must be one of {', '.join(TaskType.values)}"})
        if has_items and changes["task_type"] != project.task_type:
            raise ValidationError({"task_type": "cannot change once items are imported"})
    if "labels" in changes:
        labels = validate_labels(changes["labels"])
        if has_items and labels[: len(project.labels)] != list(project.labels):
            raise ValidationError(
                {"labels": "items exist: labels can only be appended, existing labels keep their names and order"}
            )
        changes["labels"] = labels
    if "split_ratios" in changes:
        try:
            ratios = validate_split_ratios(changes["split_ratios"])
        except ValueError as exc:
            raise ValidationError({"split_ratios": str(exc)}) from exc
        if has_items and ratios != project.split_ratios:
            raise ValidationError({"split_ratios": "cannot change once items are imported"})
        changes["split_ratios"] = ratios
    # The two defaults are checked together: a heuristic needing several passes with a one-pass default.
    current = {"default_heuristic": project.default_heuristic, "default_mc_iterations": project.default_mc_iterations}
    checked: dict[str, Any] = current | changes
    validate_project_defaults(task_type=str(checked.pop("task_type", project.task_type)), **checked)
    previous = copy.copy(project)
    for name, value in changes.items():
        setattr(project, name, value)
    extra = clean_ls_connection(project=project, previous=previous, key_given="ls_api_key" in changes)
    relink = any(getattr(project, f) != getattr(previous, f) for f in LS_CONNECTION_FIELDS)
    if relink:  # another LS server, key or project: checked again (config, webhook) before the next sync or pull
        project.ls_linked = False
    fields = {*changes, *extra, *(["ls_linked"] if relink else [])}
    _clean_and_save(project, update_fields=[*sorted(fields), "updated_at"])
    if any(getattr(project, f) != getattr(previous, f) for f in ("annotators_per_task", "consensus_rule")):
        # Labels follow the new rule and Label Studio the new overlap: both are a task's work (LS is slow I/O).
        enqueue_on_commit(PROJECT_OVERLAP, project_id=project.pk)
    if has_items and "model_config" in changes and feature_key(project) != feature_key(previous):
        features_request(project=project)  # another backbone or encoder: its features, ahead of the next cycle
    return project


@transaction.atomic
def project_delete(*, project: Project, batch_size: int = 10_000) -> None:
    """Delete a project and everything under it (items, cycles, scores, model versions). Label Studio is untouched.

    Items go first, in batches: Django's delete collector loads every row it cascades from into memory, which for a
    pool of millions is too much at once; per batch, the rows hanging off those items go in a few DELETEs. Cycles go
    before the project: they (and their selections) point at model versions with PROTECT, and the collector refuses
    to cascade from the project into model versions while it still sees them referenced. A project's simulation
    sandboxes go first, the same way, for the same reason.
    """
    for sandbox in Project.objects.filter(sandbox_of=project).order_by("pk"):
        project_delete(project=sandbox, batch_size=batch_size)
    items = Item.objects.filter(project=project)
    while batch := list(items.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        Item.objects.filter(pk__in=batch).delete()
    Cycle.objects.filter(project=project).delete()
    project.delete()


def project_add_member(*, project: Project, user: AbstractBaseUser, role: str = Membership.Role.MEMBER) -> Membership:
    """Add `user` to the project, or change their role. The project's creator always stays an owner."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Membership.Role.values)}"})
    if user.pk == project.owner_id and role != Membership.Role.OWNER:
        raise ValidationError({"role": "the project's creator is always an owner"})
    membership, _ = Membership.objects.update_or_create(project=project, user_id=user.pk, defaults={"role": role})
    return membership


def project_remove_member(*, project: Project, user: AbstractBaseUser) -> None:
    if user.pk == project.owner_id:
        raise ValidationError({"username": "the project's creator cannot be removed"})
    Membership.objects.filter(project=project, user_id=user.pk).delete()
