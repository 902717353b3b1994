"""The README's "API in five calls", run as printed: every curl line of that block, parsed from the README itself,
sent to the app (project 3 and cycle 7 stand for the ids the earlier calls returned). A README example that stops
working fails here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from campaigns.demo_data import TOPIC_LABELS
from campaigns.models import Cycle, Item, Project
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.states import CycleState
from tests.factories import UserFactory

README = Path(__file__).resolve().parents[3] / "README.md"
pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def readme_calls() -> list[dict[str, Any]]:
    """Each curl command of the block: method, path, JSON body or uploaded file name."""
    text = README.read_text()
    block = text.split("## The API in five calls", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = re.sub(r"\\\n\s*", " ", block).splitlines()
    calls = []
    for line in commands:
        if not line.strip().startswith("curl") and "$(curl" not in line:
            continue
        words = shlex.split(line.split("$(", 1)[-1].split("|", 1)[0])
        path = next(w for w in words if w.startswith("localhost:8000")).removeprefix("localhost:8000")
        call: dict[str, Any] = {"path": path, "method": "GET"}
        if "-d" in words:
            call["method"], call["body"] = "POST", words[words.index("-d") + 1]
        if "-F" in words:
            call["method"], call["file"] = "POST", words[words.index("-F") + 1].split("@", 1)[1]
        if "-X" in words:
            call["method"] = words[words.index("-X") + 1]
        calls.append(call)
    return calls


def test_the_readme_walkthrough_works_as_printed(mlflow_store: str) -> None:
    calls = readme_calls()
    assert [c["path"].split("/")[-2] for c in calls] == [
        "token",
        "projects",
        "import",
        "cycles",
        "preview",
        "select",
        "learning-curve",
    ]
    UserFactory(username="admin", password="a-long-admin-password")
    client = APIClient()
    ids: dict[str, str] = {}

    def send(call: dict[str, Any]) -> Any:
        path = call["path"].replace("/projects/3/", f"/projects/{ids.get('project', 3)}/")
        path = path.replace("/cycles/7/", f"/cycles/{ids.get('cycle', 7)}/")
        if "file" in call:
            # The README's reviews.csv: the labels of the walkthrough's project, some rows labeled already.
            labels = json.loads(calls[1]["body"])["labels"]
            rows = "".join(
                f"r{i},the {TOPIC_LABELS[i % 4]} review number {i},{labels[i % 2] if i < 30 else ''}\n"
                for i in range(300)
            )
            upload = SimpleUploadedFile(call["file"], ("key,text,label\n" + rows).encode(), "text/csv")
            return client.post(path, {"file": upload}, format="multipart")
        if call["method"] == "GET":
            return client.get(path)
        if "body" not in call:
            return client.post(path)
        body = call["body"]
        if path.endswith("/auth/token/"):  # a form body: username=admin&password=…
            return client.post(path, {"username": "admin", "password": "a-long-admin-password"})
        return client.post(path, json.loads(body), format="json")

    token = send(calls[0])
    assert token.status_code == 200, token.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    created = send(calls[1])
    assert created.status_code == 201, created.content
    ids["project"] = str(created.json()["id"])
    imported = send(calls[2])
    assert imported.status_code == 200 and imported.json()["created"] == 300, imported.content
    started = send(calls[3])
    assert started.status_code == 201, started.content
    cycle = Cycle.objects.get(pk=started.json()["id"])
    ids["cycle"] = str(cycle.pk)
    # What the worker does between the calls: train on the labels so far, score the pool.
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle_run_scoring(cycle_id=cycle.pk)
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.SCORED
    preview = send(calls[4])
    assert preview.status_code == 200, preview.content
    pool = Item.objects.filter(project_id=ids["project"], split="pool", label__isnull=True).count()
    assert preview.json()["qualifying"] >= 0.3 * pool > 0 and preview.json()["would_select"] > 0
    selected = send(calls[5])
    assert selected.status_code == 200 and selected.json()["size"] > 0, selected.content
    curve = send(calls[6])
    assert curve.status_code == 200 and len(curve.json()) == 1
    assert Project.objects.get(pk=ids["project"]).name == json.loads(calls[1]["body"])["name"]
