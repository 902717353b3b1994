"""A thin, typed layer over label-studio-sdk 2.x for the calls alweb makes. No Django here.

Both token kinds work with one factory: the SDK sends a legacy token as `Authorization: Token …` and exchanges a
personal access token (a JWT refresh token) for 5-minute access tokens at `/api/token/refresh/` by itself.

Retries: the SDK retries POSTs on 5xx/408/409/429 and connection errors (`max_retries` 2), so a bulk import can
land twice. Every write here passes `max_retries=0`: the caller (alweb's sync) owns retries and makes them
idempotent by checking what LS already has. Reads keep the SDK's retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import jwt
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.core.request_options import RequestOptions

from integrations.labelstudio.convert import PredictionPayload, TaskPayload

TokenKind = Literal["pat", "legacy"]
Sampling = Literal["Sequential sampling", "Uniform sampling", "Uncertainty sampling"]
UNCERTAINTY_SAMPLING: Sampling = "Uncertainty sampling"

DEFAULT_TIMEOUT_S = 30.0
# Bulk imports of a few thousand tasks with predictions take seconds; a short timeout would fail them and, worse,
# leave the caller unsure whether LS committed them.
IMPORT_TIMEOUT_S = 300.0
NO_RETRY: RequestOptions = {"max_retries": 0}
WEBHOOK_SECRET_HEADER = "X-Alweb-Webhook-Secret"
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
# The Data Manager parses Datetime filter values with exactly this format (naive, read as UTC by LS).
LS_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

__all__ = [
    "ApiError",
    "ImportMismatchError",
    "LabelStudio",
    "ProjectInfo",
    "ProjectSummary",
    "add_ml_backend",
    "create_project",
    "delete_predictions",
    "delete_tasks",
    "get_overlap",
    "get_project",
    "import_predictions",
    "import_tasks",
    "iter_tasks",
    "list_annotations",
    "make_client",
    "next_task",
    "project_counts",
    "project_summary",
    "register_webhook",
    "retrieve_predictions",
    "server_time",
    "set_model_version",
    "set_overlap",
    "tasks_query",
    "token_kind",
    "update_project",
]


class ImportMismatchError(RuntimeError):
    """LS created fewer objects than sent (it drops invalid predictions silently)."""

    def __init__(self, *, expected: int, created: int, what: str = "predictions") -> None:
        self.expected, self.created = expected, created
        super().__init__(f"LS created {created} of {expected} {what}; see its log for the rejected ones")


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    title: str
    label_config: str
    model_version: str
    sampling: str | None
    description: str = ""


def token_kind(api_key: str) -> TokenKind:
    """ "pat" for a JWT (a personal access token), "legacy" for an opaque key; how the SDK tells them apart too."""
    try:
        jwt.decode(api_key, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return "legacy"
    return "pat"


def make_client(base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> LabelStudio:
    """An SDK client for a PAT or a legacy token.

    The SDK joins `api/token/refresh/` to the base URL with `urljoin`, which drops a path segment without a
    trailing slash: keep the base URL bare (`http://host:port`) or end a sub-path with `/`."""
    if not api_key:
        raise ValueError("an API key (personal access token or legacy token) is required")
    return LabelStudio(base_url=base_url.rstrip("/"), api_key=api_key, timeout=timeout)


# ---------------------------------------------------------------------------------------------------- projects


def create_project(
    client: LabelStudio,
    *,
    title: str,
    label_config: str,
    description: str = "",
    sampling: Sampling = UNCERTAINTY_SAMPLING,
    model_version: str | None = None,
) -> ProjectInfo:
    """Create a project; uncertainty sampling by default so LS's task stream follows alweb's scores."""
    if len(title) < 3:
        raise ValueError("LS project titles need at least 3 characters")
    project = client.projects.create(
        title=title[:50],  # LS limits titles to 50 characters
        label_config=label_config,
        description=description,
        sampling=sampling,
        model_version=model_version if model_version is not None else "",
        request_options=NO_RETRY,  # a retried create makes a second project
    )
    assert project.id is not None
    return get_project(client, project.id)


def get_project(client: LabelStudio, project_id: int) -> ProjectInfo:
    data = _request(client, "GET", f"api/projects/{int(project_id)}/")
    return ProjectInfo(
        id=int(data["id"]),
        title=str(data.get("title") or ""),
        label_config=str(data.get("label_config") or ""),
        model_version=str(data.get("model_version") or ""),
        sampling=data.get("sampling"),
        description=str(data.get("description") or ""),
    )


def update_project(client: LabelStudio, *, project_id: int, **fields: Any) -> None:
    """PATCH project fields by LS name (`sampling`, `model_version`, `label_config`, `title`, ...)."""
    _request(client, "PATCH", f"api/projects/{int(project_id)}/", json=fields)


def set_model_version(client: LabelStudio, *, project_id: int, model_version: str) -> None:
    """LS orders tasks only by predictions whose model_version equals the project's: keep them in step."""
    update_project(client, project_id=project_id, model_version=str(model_version))


def set_overlap(client: LabelStudio, *, project_id: int, annotators: int) -> None:
    """How many annotators label each task: LS's `maximum_annotations`, with every task in the overlap cohort
    (`overlap_cohort_percentage` 100; a lower share would leave most tasks with one answer, and no agreement)."""
    if annotators < 1:
        raise ValueError("annotators must be at least 1")
    update_project(client, project_id=project_id, maximum_annotations=int(annotators), overlap_cohort_percentage=100)


def get_overlap(client: LabelStudio, project_id: int) -> tuple[int, int]:
    """(maximum_annotations, overlap_cohort_percentage) as the LS project has them."""
    data = _request(client, "GET", f"api/projects/{int(project_id)}/")
    return int(data.get("maximum_annotations") or 1), int(data.get("overlap_cohort_percentage") or 0)


@dataclass(frozen=True)
class ProjectSummary:
    tasks: int
    predictions: int
    model_version: str
    label_config: str = ""


def project_summary(client: LabelStudio, project_id: int, *, with_config: bool = False) -> ProjectSummary:
    """Task and prediction counts (two COUNTs on LS's side) and the project's model_version, in one cheap GET
    (`include` limits what LS computes and returns); the labeling config too when asked."""
    fields = "task_number,total_predictions_number,model_version" + (",label_config" if with_config else "")
    data = _request(client, "GET", f"api/projects/{int(project_id)}/", params={"include": fields})
    return ProjectSummary(
        tasks=int(data.get("task_number") or 0),
        predictions=int(data.get("total_predictions_number") or 0),
        model_version=str(data.get("model_version") or ""),
        label_config=str(data.get("label_config") or ""),
    )


def project_counts(client: LabelStudio, project_id: int) -> tuple[int, int]:
    """(tasks, predictions) in the project."""
    summary = project_summary(client, project_id)
    return summary.tasks, summary.predictions


# ---------------------------------------------------------------------------------------------------- imports


def import_tasks(client: LabelStudio, *, project_id: int, tasks: Sequence[TaskPayload]) -> list[int]:
    """Bulk-import tasks (with inline predictions); returns the new task ids in input order. Not retried."""
    if not tasks:
        return []
    data = _post_json(
        client,
        f"api/projects/{int(project_id)}/import",
        tasks,
        params={"return_task_ids": "true", "commit_to_project": "true"},
    )
    ids = list(data.get("task_ids") or []) if isinstance(data, Mapping) else []
    if len(ids) != len(tasks):
        raise ImportMismatchError(expected=len(tasks), created=len(ids), what="tasks")
    return [int(i) for i in ids]


def import_predictions(client: LabelStudio, *, project_id: int, predictions: Sequence[PredictionPayload]) -> int:
    """Bulk-import predictions for existing tasks (each with `task`); returns how many LS created. Not retried."""
    if not predictions:
        return 0
    if any("task" not in p for p in predictions):
        raise ValueError("every prediction of a bulk import needs its `task` id")
    data = _post_json(client, f"api/projects/{int(project_id)}/import/predictions", predictions)
    created = int(data.get("created", 0) or 0) if isinstance(data, Mapping) else 0
    if created != len(predictions):
        # LS validates these (score in [0, 1], labels in the config) and drops invalid ones with a 201 and a line
        # in its own log only. Inline predictions of a task import are not validated at all.
        raise ImportMismatchError(expected=len(predictions), created=created)
    return created


def _post_json(client: LabelStudio, path: str, body: Any, *, params: Mapping[str, Any] | None = None) -> Any:
    """POST a large JSON body encoded once with the stdlib encoder. The SDK's own import methods walk every
    value through its pure-Python `jsonable_encoder` first: ~0.2 ms per task, a sixth of a bulk import's time.
    Same endpoints, auth and timeouts as the SDK's; never retried (see the module docstring)."""
    http = client._client_wrapper.httpx_client
    response = http.request(
        path,
        method="POST",
        params=dict(params or {}),
        content=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json"},
        request_options={**NO_RETRY, "timeout": IMPORT_TIMEOUT_S},
    )
    if response.status_code >= 400:
        try:
            detail: Any = response.json()
        except ValueError:
            detail = response.text
        raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=detail)
    return response.json() if response.content else None


# ---------------------------------------------------------------------------------------------------- reads


def tasks_query(
    *,
    updated_after: datetime | None = None,
    task_ids: Sequence[int] | None = None,
    data_equals: tuple[str, str] | None = None,
) -> str:
    """The Data Manager `query` JSON for the task list: tasks updated strictly after a time, and/or given ids.

    `updated_at` moves when an annotation of the task is created, updated or deleted (and when a prediction is
    saved one by one). Ordering is left to LS's default, by id: stable under concurrent updates, unlike
    ordering by `updated_at`, where a task updated mid-pull jumps pages and shifts others past the reader."""
    filters: list[dict[str, Any]] = []
    if updated_after is not None:
        value = _as_utc(updated_after).strftime(LS_DATETIME_FORMAT)
        filters.append({"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value})
    if data_equals is not None:
        # A string key in task data (e.g. alweb's sync batch token): LS filters `data__key` in SQL.
        key, text = data_equals
        filters.append({"filter": f"filter:tasks:data.{key}", "operator": "equal", "type": "String", "value": text})
    query: dict[str, Any] = {"filters": {"conjunction": "and", "items": filters}}
    if task_ids is not None:
        query["selectedItems"] = {"all": False, "included": [int(i) for i in task_ids]}
    return json.dumps(query)


def iter_tasks(
    client: LabelStudio,
    *,
    project_id: int,
    updated_after: datetime | None = None,
    task_ids: Sequence[int] | None = None,
    data_equals: tuple[str, str] | None = None,
    fields: Literal["all", "task_only"] = "all",
    page_size: int = 200,
) -> Iterator[dict[str, Any]]:
    """Tasks of a project as raw JSON dicts (with `annotations` and `predictions` when fields="all").

    For an incremental pull, take `server_time()` *before* the first page and use it (minus a small margin)
    as the next `updated_after`: a max of the `updated_at` values seen would skip tasks updated mid-pull."""
    if task_ids is not None and not task_ids:
        return
    query = tasks_query(updated_after=updated_after, task_ids=task_ids, data_equals=data_equals)
    page = 1
    while True:
        params = {"project": int(project_id), "page": page, "page_size": page_size, "fields": fields, "query": query}
        try:
            data = _request(client, "GET", "api/tasks/", params=params)
        except ApiError as exc:
            if exc.status_code == 404:  # LS answers "Invalid page." past the last page
                return
            raise
        tasks = data.get("tasks", []) if isinstance(data, Mapping) else data
        yield from tasks
        if len(tasks) < page_size:
            return
        page += 1


def list_annotations(client: LabelStudio, *, task_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """All annotations (cancelled/skipped ones included) of each task, one request per task.

    For many tasks prefer `iter_tasks(fields="all")`, which returns annotations inline, a page at a time."""
    return {int(t): _request(client, "GET", f"api/tasks/{int(t)}/annotations/") for t in task_ids}


def next_task(client: LabelStudio, *, project_id: int) -> dict[str, Any] | None:
    """The task LS's labeling stream would serve this user next (`/api/projects/{id}/next/`), or None."""
    try:
        task: dict[str, Any] = _request(client, "GET", f"api/projects/{int(project_id)}/next/")
        return task
    except ApiError as exc:
        if exc.status_code == 404:  # "There are still some tasks to complete for the user" / none left
            return None
        raise


def server_time(client: LabelStudio) -> datetime:
    """LS's clock (from the HTTP Date header, 1 s resolution): pull watermarks must come from LS, not from us."""
    response = _raw(client, "GET", "api/version/")
    return parsedate_to_datetime(response.headers["date"]).astimezone(UTC)


# ---------------------------------------------------------------------------------------------------- deletes


def delete_tasks(client: LabelStudio, *, project_id: int, task_ids: Sequence[int]) -> None:
    """Delete tasks (with their predictions and annotations) in one Data Manager action."""
    if not task_ids:
        return
    body = {"selectedItems": {"all": False, "included": [int(t) for t in task_ids]}}
    _request(client, "POST", "api/dm/actions/", params={"id": "delete_tasks", "project": int(project_id)}, json=body)


def delete_project(client: LabelStudio, project_id: int) -> None:
    """Delete a whole LS project (tasks, annotations, webhooks). Already gone is fine."""
    try:
        _request(client, "DELETE", f"api/projects/{int(project_id)}/")
    except ApiError as exc:
        if exc.status_code != 404:
            raise


def delete_predictions(client: LabelStudio, *, prediction_ids: Sequence[int]) -> None:
    for prediction_id in prediction_ids:  # only ever a few: the extras of a doubled import
        try:
            _request(client, "DELETE", f"api/predictions/{int(prediction_id)}/")
        except ApiError as exc:
            if exc.status_code != 404:  # already gone: what we wanted
                raise


# ---------------------------------------------------------------------------------------------------- hooks


def register_webhook(
    client: LabelStudio,
    *,
    project_id: int,
    url: str,
    secret: str,
    actions: Sequence[str] = WEBHOOK_ACTIONS,
    header: str = WEBHOOK_SECRET_HEADER,
) -> int:
    """Register (or update, if one exists for this URL) a project webhook carrying `secret` in a header.

    LS signs nothing and retries nothing: the header is the only authentication, a missed call is never resent."""
    body = {
        "project": int(project_id),
        "url": url,
        "headers": {header: secret},
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": list(actions),
        "is_active": True,
    }
    existing = _request(client, "GET", "api/webhooks/", params={"project": int(project_id)})
    for hook in existing:
        if hook.get("url") == url and hook.get("project") == int(project_id):
            _request(client, "PATCH", f"api/webhooks/{hook['id']}/", json=body)
            return int(hook["id"])
    return int(_request(client, "POST", "api/webhooks/", json=body)["id"])


def add_ml_backend(
    client: LabelStudio,
    *,
    project_id: int,
    url: str,
    title: str = "alweb",
    timeout_s: float = 100.0,
    basic_auth: tuple[str, str] | None = None,
) -> int:
    """Connect an ML backend (LS calls its /health and /setup now); reuses one already registered at `url`.

    With `basic_auth`, LS sends those credentials on /health, /setup, /predict and "train" (START_TRAINING to
    /webhook). The webhook LS adds for the backend (`<url>/webhook`, every event) carries no credentials."""
    body: dict[str, Any] = {
        "project": int(project_id),
        "url": url,
        "title": title,
        "is_interactive": False,
        "timeout": timeout_s,
    }
    if basic_auth is not None:
        body |= {"auth_method": "BASIC_AUTH", "basic_auth_user": basic_auth[0], "basic_auth_pass": basic_auth[1]}
    for backend in _request(client, "GET", "api/ml/", params={"project": int(project_id)}):
        if backend.get("url") == url:
            if basic_auth is not None:  # a rotated secret must reach LS too
                _request(client, "PATCH", f"api/ml/{backend['id']}", json=body)
            return int(backend["id"])
    return int(_request(client, "POST", "api/ml/", json=body)["id"])


def retrieve_predictions(client: LabelStudio, *, project_id: int, task_ids: Sequence[int] | None = None) -> None:
    """The Data Manager's "Retrieve predictions" action: LS asks the project's ML backend to predict the tasks."""
    selected: dict[str, Any] = (
        {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": [int(t) for t in task_ids]}
    )
    params = {"id": "retrieve_tasks_predictions", "project": int(project_id)}
    _request(client, "POST", "api/dm/actions/", params=params, json={"selectedItems": selected})


# ---------------------------------------------------------------------------------------------------- plumbing


def _raw(
    client: LabelStudio,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
) -> httpx.Response:
    # The SDK's own HTTP client: base URL, both token kinds (with the PAT refresh) and timeouts come with it.
    # Writes are never retried here, for the same reason as the bulk imports.
    http = client._client_wrapper.httpx_client
    options: RequestOptions | None = None if method == "GET" else NO_RETRY
    response = http.request(path, method=method, params=dict(params or {}), json=json, request_options=options)
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=body)
    return response


def _request(
    client: LabelStudio,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
) -> Any:
    response = _raw(client, method, path, params=params, json=json)
    return response.json() if response.content else None


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime: LS compares in UTC")
    return moment.astimezone(UTC)
