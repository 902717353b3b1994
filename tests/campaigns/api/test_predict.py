"""POST /api/projects/{id}/predict/ and GET /model/download/ with real models: a CNN trained on digits and a MiniLM
text head, both through a real cycle into the real MLflow store, and an external detector registered in it. Image
URLs are fetched from a real HTTP server on loopback."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
import yaml
from django.core.management import call_command

from campaigns.demo_data import DIGIT_LABELS, TOPIC_LABELS, write_digits, write_topics
from campaigns.models import Item, Project
from campaigns.services.cycles import cycle_create
from campaigns.services.features import item_inputs
from campaigns.services.inference import model_load, model_score
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_training
from campaigns.services.training import model_register_external
from models_registry.models import ModelVersion
from tests.campaigns.services.test_training import label_some
from tests.campaigns.test_ingest import png
from tests.models_registry.test_external import BrightnessDetector, log_pyfunc

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]


def train(project: Project) -> ModelVersion:
    cycle = cycle_create(project=project, mc_iterations=5, budget=10)
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle.refresh_from_db()
    assert cycle.model_version is not None and cycle.model_version.is_champion
    return cycle.model_version


@pytest.fixture
def image_server() -> Iterator[tuple[str, dict[str, tuple[int, bytes, dict[str, str]]]]]:
    """A real HTTP server on loopback answering from a dict path -> (status, body, headers)."""
    routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, headers = routes.get(self.path, (404, b"not found", {}))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def digits_project(project: Project, tmp_path: Path) -> Project:
    """The API fixtures' project (owner olivia, member mario), as a small digit classifier."""
    project.task_type, project.labels = "image_classification", DIGIT_LABELS
    project.model_config = {"image_size": 8, "channels": 1, "epochs": 12}
    project.split_ratios = {"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7}
    project.save()
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=300, size=8))
    label_some(project, 150)
    return project


def post_images(client: Any, project: Project, files: list[tuple[str, bytes]]) -> Any:
    upload = []
    for name, data in files:
        fh = io.BytesIO(data)
        fh.name = name
        upload.append(fh)
    return client.post(f"/api/projects/{project.pk}/predict/", {"images": upload}, format="multipart")


def test_image_predictions_match_the_champion_and_bad_input_is_refused(
    digits_project: Project,
    as_member: Any,
    as_outsider: Any,
    anon: Any,
    mlflow_store: str,
    tmp_path: Path,
    settings: Any,
    image_server: tuple[str, dict[str, Any]],
) -> None:
    project = digits_project
    url = f"/api/projects/{project.pk}/predict/"
    test_items = list(Item.objects.filter(project=project, split="test").order_by("pk")[:12])
    files = [(Path(i.media.name).name, i.media.read()) for i in test_items]

    # No model yet: 409 in words; the download too.
    before = post_images(as_member, project, files[:1])
    assert before.status_code == 409 and "no champion" in before.json()["detail"]
    assert as_member.get(f"/api/projects/{project.pk}/model/download/").status_code == 409

    mv = train(project)
    # Outsiders see no project at all, anonymous callers must authenticate.
    assert post_images(as_outsider, project, files[:1]).status_code == 404
    assert post_images(anon, project, files[:1]).status_code == 401
    assert as_outsider.get(f"/api/projects/{project.pk}/model/download/").status_code == 404

    response = post_images(as_member, project, files)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"]["id"] == mv.pk and body["model_version"]["version"] == mv.version
    assert (body["heuristic"], body["mc_iterations"]) == (project.default_heuristic, project.default_mc_iterations)
    predictions = body["predictions"]
    assert [p["key"] for p in predictions] == [name for name, _ in files]
    # The same numbers a cycle would store for these images: the same model, inputs and MC scoring (seed 0).
    reference = model_score(
        model=model_load(model_version=mv),
        inputs=item_inputs(project, test_items),
        ids=[i.pk for i in test_items],
        iterations=project.default_mc_iterations,
        heuristic=project.default_heuristic,
        seed=0,
        labels=DIGIT_LABELS,
    )
    for p, k, u, probs in zip(predictions, reference.labels, reference.uncertainty, reference.probs, strict=True):
        assert p["label"] == DIGIT_LABELS[int(k)] and p["uncertainty"] == pytest.approx(float(u), abs=1e-5)
        assert [p["probabilities"][c] for c in DIGIT_LABELS] == pytest.approx(probs.tolist(), abs=1e-5)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4) and p["boxes"] == []
    right = sum(p["label"] == i.ground_truth for p, i in zip(predictions, test_items, strict=True))
    assert right >= 8, [(p["label"], i.ground_truth) for p, i in zip(predictions, test_items, strict=True)]

    # An image URL: fetched from an allowed origin only, never through a redirect.
    base, routes = image_server
    routes["/d.png"] = (200, files[0][1], {"Content-Type": "image/png"})
    routes["/moved"] = (302, b"", {"Location": "/d.png"})
    routes["/text"] = (200, b"hello, not an image", {})
    by_url = as_member.post(url, {"items": [{"url": f"{base}/d.png", "key": "a"}]}, format="json")
    assert by_url.status_code == 400 and "not an allowed image origin" in by_url.json()["items"]["0"]["url"][0]
    settings.ALWEB_PREDICT_URL_ORIGINS = [base + "/"]
    by_url = as_member.post(url, {"items": [{"url": f"{base}/d.png", "key": "a"}]}, format="json")
    assert by_url.status_code == 200, by_url.content
    # The same bytes alone in a request, uploaded or fetched: the same numbers (the dropout masks are drawn per
    # request from a fixed seed, so they depend on the request's items, not on when it is sent).
    alone = post_images(as_member, project, files[:1]).json()["predictions"][0]
    assert by_url.json()["predictions"][0]["probabilities"] == alone["probabilities"]
    assert by_url.json()["predictions"][0]["key"] == "a"
    cases = {
        f"{base}/moved": "redirects are not followed",
        f"{base}/missing": "HTTP 404",
        f"{base}/text": "unreadable image",
        "ftp://127.0.0.1/d.png": "http or https",
        "http://user:pw@127.0.0.1/d.png": "user name or password",
        "http://169.254.169.254/latest/meta-data": "not an allowed image origin",
    }
    for bad, reason in cases.items():
        response = as_member.post(url, {"items": [{"url": bad}]}, format="json")
        assert response.status_code == 400 and reason in response.json()["items"]["0"]["url"][0], (bad, response.json())

    # Bad items, named: which list, which index, which field.
    second = as_member.post(url, {"items": [{"url": f"{base}/d.png"}, {"url": f"{base}/text"}]}, format="json")
    assert second.status_code == 400 and list(second.json()["items"]) == ["1"] and "url" in second.json()["items"]["1"]
    broken = post_images(as_member, project, [files[0], ("broken.png", files[0][1][:40])])
    assert broken.status_code == 400 and "unreadable image" in broken.json()["images"]["1"][0]
    wrong_kind = as_member.post(url, {"items": [{"text": "a seven"}]}, format="json")
    assert wrong_kind.status_code == 400 and "takes images" in wrong_kind.json()["items"]["0"]["text"][0]
    for body_, field in (
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": "x"}, "items"),
        ({"items": [{}]}, "items"),
    ):
        response = as_member.post(url, body_, format="json")
        assert response.status_code == 400 and field in response.json(), (body_, response.json())
    assert "images" in post_images(as_member, project, []).json()

    # A config saved after training changes what the next cycle trains, not the champion's inputs: it still reads
    # the 8-pixel images it was trained on.
    project.model_config = {**project.model_config, "image_size": 16}
    project.save()
    resized = post_images(as_member, project, files[:1])
    assert resized.status_code == 200, resized.content
    assert resized.json()["predictions"][0]["probabilities"] == alone["probabilities"]

    # Over a limit: 413 with the limit, before anything is decoded.
    settings.ALWEB_PREDICT_MAX_ITEMS = 3
    many = post_images(as_member, project, files[:4])
    assert many.status_code == 413 and many.json()["limit_items"] == 3
    settings.ALWEB_PREDICT_MAX_BYTES = 2000
    big = post_images(as_member, project, [("big.png", png(size=(400, 400)) + b"\0" * 3000)])
    assert big.status_code == 413 and big.json()["limit_bytes"] == 2000

    # The champion's files, zipped, load as the same network.
    download = as_member.get(f"/api/projects/{project.pk}/model/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert f"{mv.registered_name}-v{mv.registered_version}.zip" in download["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    root = f"{mv.registered_name}-v{mv.registered_version}"
    assert f"{root}/MLmodel" in archive.namelist()
    archive.extractall(tmp_path / "unzipped")
    loaded = mlflow.pytorch.load_model(str(tmp_path / "unzipped" / root), map_location="cpu")
    assert type(loaded).__name__ == "ImageCNN"
    x = torch.as_tensor(item_inputs(project, test_items[:2]))
    with torch.no_grad():
        assert np.allclose(loaded.eval()(x).numpy(), model_load(model_version=mv).eval()(x).numpy(), atol=1e-5)


def test_text_predictions_and_empty_text(
    project: Project, as_member: Any, mlflow_store: str, tmp_path: Path, image_server: tuple[str, Any]
) -> None:
    project.task_type, project.labels, project.model_config = "text_classification", TOPIC_LABELS, {"epochs": 20}
    project.split_ratios = {"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6}
    project.save()
    items_import(project=project, path=write_topics(tmp_path / "topics", n=160))
    label_some(project, 50)
    mv = train(project)
    url = f"/api/projects/{project.pk}/predict/"
    texts = {
        "billing": "I was overcharged and the refund never showed on my card",
        "shipping": "the parcel arrived late and the tracking was wrong",
        "support": "the agent on the chat was rude and my ticket waited",
    }
    response = as_member.post(url, {"items": [{"text": t, "key": k} for k, t in texts.items()]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"]["id"] == mv.pk
    assert {p["key"]: p["label"] for p in body["predictions"]} == {k: k for k in texts}
    assert all(set(p["probabilities"]) == set(TOPIC_LABELS) for p in body["predictions"])
    # Switching the project to fine-tuning changes the next cycle's model; the champion is still the frozen head
    # and keeps reading its encoder's embeddings (token ids would not fit it).
    project.model_config = {"epochs": 20, "finetune": True}
    project.save()
    again = as_member.post(url, {"items": [{"text": t, "key": k} for k, t in texts.items()]}, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["predictions"] == body["predictions"]

    for items, field, reason in (
        ([{"text": ""}], "text", "may not be blank"),
        ([{"text": "   "}], "text", "must not be empty"),
        ([{"text": ["a"]}], "text", "valid string"),
        ([{"key": "k"}], "text", "exactly one of"),
        ([{"text": "a", "url": "http://x/y.png"}], "text", "exactly one of"),
        ([{"url": f"{image_server[0]}/x.png"}], "url", "classifies text"),
    ):
        response = as_member.post(url, {"items": items}, format="json")
        assert response.status_code == 400, (items, response.content)
        assert reason in " ".join(response.json()["items"]["0"][field]), (items, response.json())
    image = post_images(as_member, project, [("a.png", png())])
    assert image.status_code == 400 and "classifies text" in image.json()["images"]["0"][0], image.json()


def test_detection_predictions_give_the_detectors_boxes(
    project: Project, as_member: Any, mlflow_store: str, tmp_path: Path
) -> None:
    project.task_type, project.labels = "object_detection", ["car", "person"]
    project.model_config = {"image_size": 8, "channels": 1}
    project.save()
    model_register_external(
        project=project, model_uri=log_pyfunc(BrightnessDetector(), tmp_path, mlflow_store), kind="pyfunc-detector"
    )
    response = post_images(
        as_member, project, [("bright.png", png((250, 250, 250), (8, 8))), ("black.png", png((0, 0, 0), (8, 8)))]
    )
    assert response.status_code == 200, response.content
    bright, black = response.json()["predictions"]
    assert response.json()["heuristic"] == "detection:min_confidence"
    assert bright["label"] == "car" and bright["probabilities"] == {}
    # BrightnessDetector's box is (0, 0, 4, 4) pixels of the 8 x 8 input: the top-left quarter, as fractions.
    (box,) = bright["boxes"]
    assert (box["label"], box["x"], box["y"], box["w"], box["h"]) == ("car", 0, 0, 0.5, 0.5)
    assert box["score"] == pytest.approx(250 / 255, abs=1e-3) and response.json()["mc_iterations"] == 1
    assert black["boxes"] == [] and black["label"] is None and black["uncertainty"] == 1.0


def test_openapi_documents_predict_and_download(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    predict = paths["/api/projects/{project_pk}/predict/"]["post"]
    assert {"200", "400", "404", "409", "413"} <= set(predict["responses"])
    assert {"application/json", "multipart/form-data"} <= set(predict["requestBody"]["content"])
    download = paths["/api/projects/{project_pk}/model/download/"]["get"]
    assert "application/zip" in download["responses"]["200"]["content"]
