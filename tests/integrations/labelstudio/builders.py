"""Projects, cycles and selections for Label Studio integration tests, built through alweb's own services."""

from __future__ import annotations

import contextlib
import io
import secrets
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from campaigns.models import Cycle, Item, Project, Score, Selection
from campaigns.services.cycles import cycle_create, cycle_transition
from campaigns.services.selection import selection_make
from campaigns.states import CycleState
from integrations.labelstudio import client as lsc
from integrations.labelstudio.client import LabelStudio
from models_registry.models import ModelVersion
from tests.factories import ProjectFactory

LABELS = ["cat", "dog", "bird"]


def make_project(task_type: str = "text_classification", *, n: int = 20, **kwargs: Any) -> Project:
    """A project with `n` pool items (text, or small PNGs for image tasks), ground truth on every item."""
    project = ProjectFactory(
        task_type=task_type, labels=list(LABELS), ls_webhook_secret=secrets.token_urlsafe(32), **kwargs
    )
    items = []
    for i in range(n):
        item = Item(project=project, key=f"item-{i:04d}", split="pool", ground_truth=LABELS[i % len(LABELS)])
        if task_type == "text_classification":
            item.text = f"a text about the {LABELS[i % len(LABELS)]} number {i}"
        else:
            item.media.save(f"img-{project.pk}-{i}.png", ContentFile(png_bytes(i)), save=False)
            item.media_width, item.media_height = 40, 30
            if task_type == "object_detection":
                item.ground_truth = [{"label": LABELS[i % 3], "x": 0.1, "y": 0.2, "w": 0.5, "h": 0.25}]
        items.append(item)
    Item.objects.bulk_create(items)
    return project


def png_bytes(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, 120)).save(buf, format="PNG")
    return buf.getvalue()


def model_version(project: Project, *, champion: bool = False, **kwargs: Any) -> ModelVersion:
    version = ModelVersion.objects.filter(project=project).count() + 1
    return ModelVersion.objects.create(project=project, version=version, status="ready", is_champion=champion, **kwargs)


def scored_cycle(
    project: Project, uncertainties: dict[str, float], *, budget: int | None = None, mv: ModelVersion | None = None
) -> Cycle:
    """A cycle with a model version and scores for the items named in `uncertainties` (by key), selected top-k."""
    mv = mv or model_version(project)
    cycle = cycle_create(project=project, budget=budget or len(uncertainties), auto_advance=False)
    Cycle.objects.filter(pk=cycle.pk).update(model_version=mv)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    items = dict(Item.objects.filter(project=project, key__in=uncertainties).values_list("key", "pk"))
    Score.objects.bulk_create(
        [
            Score(
                cycle=cycle,
                item_id=items[key],
                uncertainty=u,
                heuristic="bald",
                predicted_label=project.labels[n % len(project.labels)],
                confidence=0.5,
            )
            for n, (key, u) in enumerate(uncertainties.items())
        ]
    )
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORED)
    selection_make(cycle=Cycle.objects.get(pk=cycle.pk))
    return Cycle.objects.select_related("project").get(pk=cycle.pk)


def cold_cycle(project: Project, *, budget: int) -> Cycle:
    """A cold-start cycle: no model, a seeded random selection straight from the pool."""
    cycle = cycle_create(project=project, budget=budget, auto_advance=False)
    selection_make(cycle=cycle)
    return Cycle.objects.select_related("project").get(pk=cycle.pk)


def ls_tasks(client: LabelStudio, project: Project) -> list[dict[str, Any]]:
    project.refresh_from_db()
    assert project.ls_project_id is not None
    return list(lsc.iter_tasks(client, project_id=project.ls_project_id, fields="all"))


def duplicates(tasks: list[dict[str, Any]]) -> tuple[int, int]:
    """(extra tasks per alweb item, extra predictions per (task, model version)) in an LS task listing."""
    per_item = Counter(t["data"].get("alweb_item") for t in tasks)
    per_prediction = Counter((t["id"], p["model_version"]) for t in tasks for p in t.get("predictions") or [])
    return sum(c - 1 for c in per_item.values()), sum(c - 1 for c in per_prediction.values())


def selection_of(cycle: Cycle) -> Selection:
    return Selection.objects.get(cycle=cycle)


def ls_user(client: LabelStudio, email: str) -> int:
    """An LS user id for `email` (created once: the test server's data dir outlives the run)."""
    for user in lsc._request(client, "GET", "api/users/"):
        if user.get("email") == email:
            return int(user["id"])
    body = {"email": email, "username": email.split("@")[0], "first_name": email.split("@")[0].title()}
    return int(lsc._request(client, "POST", "api/users/", json=body)["id"])


def annotate(client: LabelStudio, task_id: int, result: Any, *, user: int | None = None, **extra: Any) -> int:
    """Create an annotation in LS (as `user` when given: the admin may file it for another annotator)."""
    body: dict[str, Any] = {"result": result, "lead_time": extra.pop("lead_time", 4.5), **extra}
    if user is not None:
        body["completed_by"] = user
    return int(lsc._request(client, "POST", f"api/tasks/{task_id}/annotations/", json=body)["id"])


@contextlib.contextmanager
def doubled_posts(*suffixes: str) -> Iterator[list[str]]:
    """Send matching POSTs twice at the HTTP level, as a retrying proxy or client would; the first answer is lost."""
    original = httpx.Client.send
    seen: list[str] = []

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if request.method == "POST" and request.url.path.rstrip("/").endswith(suffixes):
            seen.append(request.url.path)
            original(self, request, **kwargs)
        return original(self, request, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(httpx.Client, "send", send)
        yield seen
