"""HTTP endpoints Label Studio calls: the project webhook and the per-project ML backend. Thin: auth, then a service.

Authentication (never logged, compared in constant time):
  * webhook: the `X-Alweb-Webhook-Secret` header alweb registered with the hook;
  * ML backend: HTTP basic auth, user "alweb" and the same per-project secret, which alweb registers with the
    backend (`labelstudio_register_ml_backend`); a person adding alweb by hand in LS enters them in the backend's
    "Basic auth" fields. Without them /setup, /predict and START_TRAINING answer 401. `/health` answers anyone
    (it says only "UP"); the events LS posts to `<backend>/webhook` on its own carry no credentials and are
    acknowledged and ignored — the project webhook is the one that triggers pulls.
Exposure: anyone who can reach alweb and holds a project's secret can read that project's champion predictions
for items they name, and start a cycle. Only projects connected to LS (`ls_project_id` set) answer at all.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.ingest.jsonlimits import check_json_text
from campaigns.models import Project
from integrations.labelstudio import client as lsc
from integrations.labelstudio.connect import ML_BACKEND_USER
from integrations.labelstudio.ml_backend import ml_model_version, ml_predict, ml_start_training
from integrations.labelstudio.webhooks import secret_matches, webhook_receive

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        check_json_text(request.body)  # a JSONLimitError is a ValueError: refused like any malformed body
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _project(project_id: int) -> Project | None:
    return Project.objects.filter(pk=project_id).first()


@csrf_exempt
@require_POST
def labelstudio_webhook(request: HttpRequest, project_id: int) -> JsonResponse:
    project = _project(project_id)
    if project is None:
        return _error(404, "unknown project")
    if not secret_matches(project, request.headers.get(lsc.WEBHOOK_SECRET_HEADER)):
        return _error(403, "missing or wrong webhook secret")
    payload = _body(request)
    if payload is None:
        return _error(400, "the body must be a JSON object")
    if project.ls_project_id is None:
        return JsonResponse({"status": "ignored", "detail": "project not connected to Label Studio"})
    ls_project = payload.get("project")
    ls_project_id = ls_project.get("id") if isinstance(ls_project, dict) else ls_project
    if ls_project_id is not None and ls_project_id != project.ls_project_id:
        return _error(400, f"delivery is for Label Studio project {ls_project_id}, not {project.ls_project_id}")
    task_ids = webhook_receive(project=project, payload=payload)
    return JsonResponse({"status": "queued" if task_ids else "ignored", "tasks": task_ids})


# ---------------------------------------------------------------------------------------------------- ML backend


def _ml_project(project_id: int) -> Project | None:
    # Only projects with an LS connection serve the protocol.
    return Project.objects.filter(pk=project_id, ls_project_id__isnull=False).first()


def _basic_auth_ok(request: HttpRequest, project: Project) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = hmac.compare_digest(user.encode(), ML_BACKEND_USER.encode())
    return secret_matches(project, password) and user_ok


def _unauthorized() -> JsonResponse:
    response = _error(401, "basic auth required (user 'alweb', the project's webhook secret)")
    response["WWW-Authenticate"] = 'Basic realm="alweb ML backend"'
    return response


@csrf_exempt
@require_GET
def ml_health(request: HttpRequest, project_id: int) -> JsonResponse:
    if _ml_project(project_id) is None:
        return _error(404, "unknown project or not connected to Label Studio")
    return JsonResponse({"status": "UP", "model_class": "alweb"})


@csrf_exempt
@require_POST
def ml_setup(request: HttpRequest, project_id: int) -> JsonResponse:
    project = _ml_project(project_id)
    if project is None:
        return _error(404, "unknown project or not connected to Label Studio")
    if not _basic_auth_ok(request, project):
        return _unauthorized()
    return JsonResponse({"model_version": ml_model_version(project)})


@csrf_exempt
@require_POST
def ml_predict_view(request: HttpRequest, project_id: int) -> JsonResponse:
    project = _ml_project(project_id)
    if project is None:
        return _error(404, "unknown project or not connected to Label Studio")
    if not _basic_auth_ok(request, project):
        return _unauthorized()
    body = _body(request)
    if body is None or not isinstance(body.get("tasks"), list):
        return _error(400, "expected {'tasks': [...]}")
    # LS sends "<its project id>.<created timestamp>": a backend registered on another LS project is refused.
    sender = str(body.get("project") or "").split(".", 1)[0]
    if sender and sender != str(project.ls_project_id):
        return _error(400, f"request from Label Studio project {sender}, not {project.ls_project_id}")
    tasks = [t for t in body["tasks"] if isinstance(t, dict)]
    return JsonResponse(ml_predict(project=project, tasks=tasks, label_config=body.get("label_config")))


@csrf_exempt
@require_http_methods(["POST"])
def ml_webhook(request: HttpRequest, project_id: int) -> JsonResponse:
    project = _ml_project(project_id)
    if project is None:
        return _error(404, "unknown project or not connected to Label Studio")
    body = _body(request)
    if body is None:
        return _error(400, "the body must be a JSON object")
    if body.get("action") != "START_TRAINING":
        # LS's own per-backend webhook (every event, no credentials): the project webhook handles annotations.
        return JsonResponse({"status": "ignored"})
    if not _basic_auth_ok(request, project):
        return _unauthorized()
    answer = ml_start_training(project=project)
    if answer["status"] == "busy":
        # Label Studio shows an error answer to the person who pressed "Start training"; a 200 looked like success.
        return _error(409, f"alweb did not start a cycle: {answer['detail']}")
    return JsonResponse(answer)
