"""The SDK layer against a real Label Studio: projects, bulk imports, LS's own task stream, pulls, hooks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.label_config import TASK_TYPES, build_label_config, info_for, validate_label_config

pytestmark = pytest.mark.integration

LABELS = ["cat", "dog", "bird"]


def _annotate(client: LabelStudio, task_id: int, label: str) -> dict[str, Any]:
    body = {"result": convert.choice_result(label), "lead_time": 2.5}
    return lsc._request(client, "POST", f"api/tasks/{task_id}/annotations/", json=body)


def _classification_project(client: LabelStudio, title: str, uncertainties: list[float], version: str) -> list[int]:
    project = lsc.create_project(client, title=title, label_config=build_label_config("image_classification", LABELS))
    tasks: list[convert.TaskPayload] = [
        {
            "data": {"image": f"http://127.0.0.1:9/{i}.png", "alweb_key": f"item-{i}"},
            "predictions": [
                convert.prediction(convert.choice_result(LABELS[i % 3]), uncertainty=u, model_version=version)
            ],
        }
        for i, u in enumerate(uncertainties)
    ]
    ids = lsc.import_tasks(client, project_id=project.id, tasks=tasks)
    return [project.id, *ids]


def test_pat_and_legacy_clients_both_work(ls_pat_client: LabelStudio, ls_legacy_client: LabelStudio) -> None:
    assert lsc.token_kind(ls_pat_client._client_wrapper._tokens_client._api_key) == "pat"
    assert lsc.token_kind(ls_legacy_client._client_wrapper._tokens_client._api_key) == "legacy"
    me_pat, me_legacy = ls_pat_client.users.whoami(), ls_legacy_client.users.whoami()
    assert me_pat.id == me_legacy.id
    # A project made with one token kind is visible with the other.
    project = lsc.create_project(
        ls_legacy_client, title="both tokens", label_config=build_label_config("text_classification", LABELS)
    )
    assert lsc.get_project(ls_pat_client, project.id).title == "both tokens"


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_project_for_each_task_type(
    ls_pat_client: LabelStudio, unique_title: Callable[[str], str], task_type: str
) -> None:
    xml = build_label_config(task_type, [*LABELS, 'odd "label" & <co>'])  # type: ignore[arg-type]
    project = lsc.create_project(ls_pat_client, title=unique_title(task_type), label_config=xml)
    assert project.sampling == lsc.UNCERTAINTY_SAMPLING
    # What LS stored still fits (it may reformat the XML); the linked-project validator reads it back.
    info = validate_label_config(project.label_config, task_type, [*LABELS, 'odd "label" & <co>'])  # type: ignore[arg-type]
    assert info == info_for(task_type, [*LABELS, 'odd "label" & <co>'])  # type: ignore[arg-type]


def test_task_stream_serves_alweb_most_uncertain_first(ls_pat_client: LabelStudio, unique_title: Any) -> None:
    uncertainties = [0.3, 1.7, 0.05, 2.2, 0.9, -0.01]
    project_id, *_ = _classification_project(ls_pat_client, unique_title(), uncertainties, "m1")
    # LS adopts the first imported model_version only while the project has none; later ones must be set.
    assert lsc.get_project(ls_pat_client, project_id).model_version == "m1"
    lsc.set_model_version(ls_pat_client, project_id=project_id, model_version="m1")

    served = []
    for _ in range(3):  # LS keeps serving a task until it is annotated
        task = lsc.next_task(ls_pat_client, project_id=project_id)
        assert task is not None
        served.append(task["data"]["alweb_key"])
        _annotate(ls_pat_client, task["id"], "cat")
    assert served == ["item-3", "item-1", "item-4"]


def test_model_version_must_follow_the_pushed_predictions(ls_pat_client: LabelStudio, unique_title: Any) -> None:
    project_id, *ids = _classification_project(ls_pat_client, unique_title(), [0.1, 0.2, 3.0, 0.4], "m1")
    lsc.set_model_version(ls_pat_client, project_id=project_id, model_version="m1")
    # A new model disagrees: item-0 is now the most informative. Predictions go in through the bulk import.
    new = [0.0 if i else 5.0 for i in range(len(ids))]
    created = lsc.import_predictions(
        ls_pat_client,
        project_id=project_id,
        predictions=[
            convert.prediction(convert.choice_result("dog"), uncertainty=u, model_version="m2", task_id=t)
            for t, u in zip(ids, new, strict=True)
        ],
    )
    assert created == len(ids)
    first = lsc.next_task(ls_pat_client, project_id=project_id)
    assert first is not None and first["data"]["alweb_key"] == "item-2"  # still m1's order: the project says m1
    lsc.set_model_version(ls_pat_client, project_id=project_id, model_version="m2")
    _annotate(ls_pat_client, first["id"], "cat")  # release the lock LS holds on the task it served
    second = lsc.next_task(ls_pat_client, project_id=project_id)
    assert second is not None and second["data"]["alweb_key"] == "item-0"


def test_invalid_predictions_are_not_silently_dropped(ls_pat_client: LabelStudio, unique_title: Any) -> None:
    project_id, task_id, *_ = _classification_project(ls_pat_client, unique_title(), [0.5, 0.6], "m1")
    bad: convert.PredictionPayload = {
        "task": task_id,
        "result": convert.choice_result("cat"),
        "score": -0.5,  # LS requires [0, 1]; it answers 201 {"created": 0} and logs the reason
        "model_version": "m1",
    }
    with pytest.raises(lsc.ImportMismatchError) as exc:
        lsc.import_predictions(ls_pat_client, project_id=project_id, predictions=[bad])
    assert (exc.value.expected, exc.value.created) == (1, 0)


def test_detection_predictions_round_trip(ls_pat_client: LabelStudio, unique_title: Any) -> None:
    xml = build_label_config("object_detection", LABELS)
    project = lsc.create_project(ls_pat_client, title=unique_title(), label_config=xml)
    boxes = [convert.Box("dog", 12, 30, 100, 80, score=0.8), convert.Box("bird", 300, 200, 20.5, 10)]
    result = convert.boxes_result(boxes, image_width=640, image_height=480)
    pred = convert.prediction(result, uncertainty=0.4, model_version="d1")
    (task_id,) = lsc.import_tasks(
        ls_pat_client, project_id=project.id, tasks=[{"data": {"image": "x.png"}, "predictions": [pred]}]
    )
    (task,) = lsc.iter_tasks(ls_pat_client, project_id=project.id, task_ids=[task_id])
    (stored,) = task["predictions"]
    assert stored["score"] == pytest.approx(convert.uncertainty_to_ls_score(0.4))
    back = convert.result_to_boxes(stored["result"], known_labels=LABELS)
    assert [b.label for b in back] == [b.label for b in boxes]
    for got, sent in zip(back, boxes, strict=True):
        assert (got.x, got.y, got.width, got.height) == pytest.approx((sent.x, sent.y, sent.width, sent.height))


def test_incremental_pull_sees_only_changed_tasks(ls_pat_client: LabelStudio, unique_title: Any) -> None:
    project_id, *ids = _classification_project(ls_pat_client, unique_title(), [0.1] * 5, "m1")
    time.sleep(1.1)  # the watermark has 1 s resolution (HTTP Date); step past the import
    since = lsc.server_time(ls_pat_client)
    assert list(lsc.iter_tasks(ls_pat_client, project_id=project_id, updated_after=since)) == []

    annotation = _annotate(ls_pat_client, ids[2], "bird")
    changed = list(lsc.iter_tasks(ls_pat_client, project_id=project_id, updated_after=since, page_size=2))
    assert [t["id"] for t in changed] == [ids[2]]
    (got,) = changed[0]["annotations"]
    assert convert.result_to_labels(got["result"], known_labels=LABELS) == ["bird"]
    assert (got["completed_by"], got["lead_time"], got["was_cancelled"]) == (annotation["completed_by"], 2.5, False)
    assert lsc.list_annotations(ls_pat_client, task_ids=[ids[2]])[ids[2]][0]["id"] == annotation["id"]

    time.sleep(1.1)
    since = lsc.server_time(ls_pat_client)
    lsc._request(ls_pat_client, "DELETE", f"api/annotations/{annotation['id']}/")
    changed = list(lsc.iter_tasks(ls_pat_client, project_id=project_id, updated_after=since))
    assert [(t["id"], t["annotations"]) for t in changed] == [(ids[2], [])]
    # Without a watermark: every task, across pages.
    assert [t["id"] for t in lsc.iter_tasks(ls_pat_client, project_id=project_id, page_size=2)] == ids


class _Recorder(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict[str, str], Any]]

    def _reply(self, body: dict[str, Any]) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"null")
        self.calls.append((self.path, dict(self.headers), payload))
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply({"status": "UP", "model_class": "stub"})

    def do_POST(self) -> None:
        self._reply({"model_version": "stub-1"} if self.path == "/setup" else {"results": []})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, dict[str, str], Any]]]]:
    """A loopback HTTP endpoint recording what LS sends (stands in for alweb's own views, built later)."""
    calls: list[tuple[str, dict[str, str], Any]] = []
    handler = type("Handler", (_Recorder,), {"calls": calls})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", calls
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_carries_the_secret_header(ls_pat_client: LabelStudio, unique_title: Any, recorder: Any) -> None:
    url, calls = recorder
    project_id, task_id, *_ = _classification_project(ls_pat_client, unique_title(), [0.2], "m1")
    hook = lsc.register_webhook(ls_pat_client, project_id=project_id, url=f"{url}/hook", secret="s3cret")
    assert lsc.register_webhook(ls_pat_client, project_id=project_id, url=f"{url}/hook", secret="s3cret") == hook
    _annotate(ls_pat_client, task_id, "dog")
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.1)
    path, headers, payload = calls[0]
    assert path == "/hook"
    assert headers[lsc.WEBHOOK_SECRET_HEADER] == "s3cret"  # loopback delivery works: SSRF guard is off
    assert payload["action"] == "ANNOTATION_CREATED" and payload["task"]["id"] == task_id


def test_ml_backend_on_loopback_is_accepted(ls_pat_client: LabelStudio, unique_title: Any, recorder: Any) -> None:
    url, calls = recorder
    project_id, *_ = _classification_project(ls_pat_client, unique_title(), [0.2], "m1")
    backend = lsc.add_ml_backend(ls_pat_client, project_id=project_id, url=url)
    assert lsc.add_ml_backend(ls_pat_client, project_id=project_id, url=url) == backend
    assert {"/health", "/setup"} <= {path for path, _, _ in calls}
