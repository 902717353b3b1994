"""Project pages: create (errors next to the field, nothing created), import (file, line and reason), the project
page's counts, links and charts, the live cycles timeline, and starting a cycle."""

from __future__ import annotations

import io
import re
import zipfile
from html import unescape
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from campaigns.models import Cycle, Item, Membership, Project
from campaigns.services.cycles import cycle_create, cycle_progress, cycle_transition
from campaigns.states import CycleState
from models_registry.models import ModelVersion
from tests.campaigns.web.builders import scored_cycle
from tests.campaigns.web.conftest import HTMX, LS_KEY
from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db

VALID = {
    "name": "sentiment",
    "task_type": "text_classification",
    "labels": "positive, negative\nneutral",
    "split_train": "0",
    "split_valid": "0.1",
    "split_test": "0.1",
    "split_pool": "0.8",
    "default_budget": "50",
    "default_heuristic": "bald",
    "default_mc_iterations": "10",
    "annotators_per_task": "3",
    "consensus_rule": "quorum",
    "model_config": "",
    "ls_url": "http://127.0.0.1:8080",
    "ls_api_key": LS_KEY,
    "ls_project_id": "",
}


def errors_of(html: str, field: str) -> list[str]:
    """The error messages rendered next to one field (Django's <ul id="id_<field>_error">)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    return [unescape(e) for e in re.findall(r"<li>(.*?)</li>", match.group(1), re.S)] if match else []


def test_create_project_stores_it_with_the_owner_as_member(client_for: Any, owner: Any) -> None:
    response = client_for(owner).post(reverse("dashboard:project-create"), VALID)
    project = Project.objects.get(owner=owner, name="sentiment")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:project-import", args=[project.pk])
    assert project.labels == ["positive", "negative", "neutral"]
    assert project.split_ratios == {"train": 0.0, "valid": 0.1, "test": 0.1, "pool": 0.8}
    assert (project.default_budget, project.default_mc_iterations) == (50, 10)
    assert (project.annotators_per_task, project.consensus_rule) == (3, "quorum")
    assert project.ls_api_key == LS_KEY  # stored; the scanning client proves no page ever shows it
    assert Membership.objects.get(project=project, user=owner).role == "owner"


def test_create_without_the_overlap_fields_keeps_one_annotator_and_majority(client_for: Any, owner: Any) -> None:
    form = {k: v for k, v in VALID.items() if k not in ("annotators_per_task", "consensus_rule")}
    assert client_for(owner).post(reverse("dashboard:project-create"), form).status_code == 302
    project = Project.objects.get(owner=owner)
    assert (project.annotators_per_task, project.consensus_rule) == (1, "majority")


def test_create_form_never_renders_the_api_key_back(client_for: Any, owner: Any) -> None:
    form = client_for(owner).get(reverse("dashboard:project-create")).content.decode()
    assert 'type="password" name="ls_api_key"' in form
    # A refused form keeps the other values but not the key (the scanning client fails the test if it appears).
    response = client_for(owner).post(reverse("dashboard:project-create"), {**VALID, "labels": ""})
    assert response.status_code == 422
    assert 'value="sentiment"' in response.content.decode()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"labels": " , \n"}, "labels", "Give at least one label"),
        ({"labels": "cat, cat"}, "labels", "labels must be unique"),
        ({"split_pool": "0.5"}, "split_pool", "sum"),
        ({"split_valid": "abc"}, "split_valid", "Enter a number"),
        ({"default_budget": "0"}, "default_budget", "between 1 and"),
        ({"default_mc_iterations": "5000"}, "default_mc_iterations", "between 1 and 1000"),
        ({"model_config": "{not json"}, "model_config", "must be JSON"),
        ({"model_config": "[1, 2]"}, "model_config", "JSON object"),
        ({"ls_url": "not a url"}, "ls_url", "Enter a valid URL"),
        ({"annotators_per_task": "21"}, "annotators_per_task", "between 1 and 20"),
        ({"consensus_rule": "loudest"}, "consensus_rule", "Select a valid choice"),
        ({"name": ""}, "name", "This field is required"),
    ],
)
def test_create_with_bad_input_shows_the_error_next_to_the_field_and_creates_nothing(
    client_for: Any, owner: Any, change: dict[str, str], field: str, message: str
) -> None:
    response = client_for(owner).post(reverse("dashboard:project-create"), {**VALID, **change})
    assert response.status_code == 422
    errors = errors_of(response.content.decode(), field)
    assert any(message in e for e in errors), (field, errors)
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Project.objects.filter(owner=owner).exists()


def test_create_with_a_name_already_used_names_the_field(client_for: Any, owner: Any, project: Any) -> None:
    response = client_for(owner).post(reverse("dashboard:project-create"), {**VALID, "name": "reviews"})
    assert response.status_code == 422
    assert errors_of(response.content.decode(), "name") == ["you already own a project with this name"]
    assert Project.objects.filter(owner=owner).count() == 1


def upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_import_csv_creates_items_and_says_how_many(as_owner: Any, project: Any) -> None:
    rows = "".join(f"r{i},review number {i},{'positive' if i % 2 else ''}\n" for i in range(30))
    url = reverse("dashboard:project-import", args=[project.pk])
    response = as_owner.post(url, {"file": upload("reviews.csv", "key,text,label\n" + rows)}, follow=True)
    assert response.status_code == 200
    assert Item.objects.filter(project=project).count() == 30
    assert Item.objects.filter(project=project, label="positive").count() == 15
    page = response.content.decode()
    assert "Imported 30 rows: 30 new items, 0 already there, 15 labels applied." in page
    assert '<td class="num" id="items-total">30</td>' in page


def test_import_with_a_bad_row_names_file_line_and_reason_and_imports_nothing(as_owner: Any, project: Any) -> None:
    csv = "key,text,label\na,fine,positive\nb,also fine,\nc,bad one,angry\n"
    url = reverse("dashboard:project-import", args=[project.pk])
    response = as_owner.post(url, {"file": upload("my reviews.csv", csv)})
    assert response.status_code == 422
    page = response.content.decode()
    assert "<dt>File</dt><dd>my_reviews.csv</dd>" in page
    assert "<dt>Line</dt><dd>4</dd>" in page
    assert "unknown label &#x27;angry&#x27;" in page
    assert errors_of(page, "file") and "Nothing was imported" in errors_of(page, "file")[0]
    assert not Item.objects.filter(project=project).exists()


def test_import_a_zip_of_a_csv_and_its_images(as_owner: Any, owner: Any, media_root: Any) -> None:
    """Issue 17 item 8, from the dashboard: the zip's CSV is found and its image paths resolve inside the zip."""
    image_project = ProjectFactory(owner=owner, task_type="image_classification", labels=["cat", "dog"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.csv", "image,label\nimages/a.png,cat\nimages/b.png,dog\n")
        for name, color in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
            png = io.BytesIO()
            Image.new("RGB", (20, 20), color).save(png, format="PNG")
            zf.writestr(f"images/{name}.png", png.getvalue())
    upload_zip = SimpleUploadedFile("cls.zip", buf.getvalue(), content_type="application/zip")
    url = reverse("dashboard:project-import", args=[image_project.pk])
    response = as_owner.post(url, {"file": upload_zip}, follow=True)
    assert "Imported 2 rows: 2 new items, 0 already there, 2 labels applied." in response.content.decode()
    labels = dict(Item.objects.filter(project=image_project).values_list("key", "label"))
    assert labels == {"images/a.png": "cat", "images/b.png": "dog"}


def test_import_without_a_file_is_a_field_error(as_owner: Any, project: Any) -> None:
    response = as_owner.post(reverse("dashboard:project-import", args=[project.pk]), {})
    assert response.status_code == 422
    assert errors_of(response.content.decode(), "file") == ["This field is required."]


def test_project_page_shows_counts_links_curve_balance_and_models(as_owner: Any, project: Any, settings: Any) -> None:
    settings.MLFLOW_TRACKING_URI = "http://mlflow.example:5000"
    Project.objects.filter(pk=project.pk).update(ls_url="http://ls.example:8080/", ls_project_id=7)
    cycle = scored_cycle(project, n=12)
    Item.objects.filter(pk__in=Item.objects.filter(project=project).order_by("pk")[:4].values("pk")).update(
        label="negative"
    )
    mv = ModelVersion.objects.create(
        project=project,
        version=1,
        status="ready",
        label_count=40,
        registered_name="alweb-project-1",
        registered_version="3",
        metrics={
            "accuracy": 0.8125,
            "macro_f1": 0.75,
            "macro_f1_ci": [0.625, 0.8125],
            "labels": {"training": 40, "valid": 20, "test": 40},
        },
        is_champion=True,
    )
    Cycle.objects.filter(pk=cycle.pk).update(model_version=mv)
    page = as_owner.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    # The x axis is every label spent (training + validation + test), the interval is shown with the numbers.
    assert '"labels_spent": 100' in page and "0.750 (0.625\u2013" in page
    assert 'id="items-total">12<' in page and 'id="items-labeled">4<' in page
    assert 'href="http://ls.example:8080/projects/7"' in page
    assert 'href="http://mlflow.example:5000/#/models/alweb-project-1/versions/3"' in page
    assert '<script id="curve-data" type="application/json">' in page and '"accuracy": 0.8125' in page
    assert '"label": "negative", "count": 4' in page
    assert "0.812" in page and "champion" in page


def test_project_page_without_mlflow_server_or_ls_has_no_dead_links(as_owner: Any, project: Any) -> None:
    page = as_owner.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    assert "/projects/None" not in page and "#/models/" not in page
    assert "No model yet" in page and "No cycle yet" in page


def test_label_studio_link_falls_back_to_the_server_in_the_settings(as_owner: Any, project: Any, settings: Any) -> None:
    settings.LABEL_STUDIO_URL = "http://ls.default:8080/"
    Project.objects.filter(pk=project.pk).update(ls_url="", ls_project_id=5)
    page = as_owner.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    assert 'href="http://ls.default:8080/projects/5"' in page


def test_timeline_polls_only_while_a_cycle_is_open(as_owner: Any, project: Any) -> None:
    url = reverse("dashboard:project-cycles", args=[project.pk])
    assert "hx-trigger" not in as_owner.get(url).content.decode()
    cycle = cycle_create(project=project, budget=5)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    cycle_progress(cycle_id=cycle.pk, stage="scoring", done=30, total=120)
    page = as_owner.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert '<progress value="30" max="120"' in page and "25% · 30 of 120 items" in page
    cycle_transition(cycle_id=cycle.pk, to=CycleState.CANCELLED)
    assert "hx-trigger" not in as_owner.get(url).content.decode()


def test_timeline_asks_for_a_reload_when_the_page_is_stale(as_owner: Any, project: Any) -> None:
    url = reverse("dashboard:project-cycles", args=[project.pk])
    cycle = cycle_create(project=project, budget=5)
    fresh = as_owner.get(url, {"seen": f"0-{cycle.number}"}, **HTMX)
    assert fresh.status_code == 200 and "HX-Refresh" not in fresh
    cycle_transition(cycle_id=cycle.pk, to=CycleState.CANCELLED)
    stale = as_owner.get(url, {"seen": f"0-{cycle.number}"}, **HTMX)
    assert stale.status_code == 204 and stale["HX-Refresh"] == "true"


START = {
    "budget": "20",
    "threshold": "",
    "heuristic": "entropy",
    "strategy": "topk",
    "strategy_params": "",
    "mc_iterations": "5",
    "seed": "3",
    "auto_advance": "on",
}


def test_start_cycle_creates_it_and_opens_its_page(
    as_owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    ItemFactory(project=project, split="pool")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_owner.post(reverse("dashboard:cycle-start", args=[project.pk]), START)
    cycle = Cycle.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:cycle-detail", args=[project.pk, cycle.number])
    assert (cycle.budget, cycle.heuristic, cycle.mc_iterations, cycle.seed) == (20, "entropy", 5, 3)
    assert cycle.threshold is None and cycle.auto_advance
    assert len(callbacks) == 1  # the training task, enqueued once the cycle is committed


def test_start_cycle_with_activelab_relabeling_stores_it_as_strategy_options(as_owner: Any, project: Any) -> None:
    ItemFactory(project=project, split="pool")
    as_owner.post(reverse("dashboard:cycle-start", args=[project.pk]), {**START, "relabel": "activelab"})
    cycle = Cycle.objects.get(project=project)
    assert cycle.strategy_params == {"relabel": "activelab", "relabel_max_share": 0.5, "cold_start": "random"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"budget": "0"}, "budget", "between 1 and"),
        ({"budget": "many"}, "budget", "Enter a whole number"),
        ({"threshold": "-0.5"}, "threshold", "finite number >= 0"),
        ({"mc_iterations": "0"}, "mc_iterations", "between 1 and 1000"),
        ({"seed": "-1"}, "seed", "non-negative integer"),
        ({"strategy": "quota"}, "strategy_params", "quota needs quotas"),
        ({"strategy": "power", "strategy_params": '{"power": -1}'}, "strategy_params", "power must be"),
        ({"strategy_params": "[]"}, "strategy_params", "JSON object"),
        ({"heuristic": "magic"}, "heuristic", "Select a valid choice"),
        ({"relabel": "activelab", "relabel_max_share": "0"}, "relabel_max_share", "share of the budget in (0, 1]"),
        ({"relabel_max_share": "0.3"}, "relabel_max_share", 'needs relabel: "activelab"'),
        ({"relabel": "always"}, "relabel", "Select a valid choice"),
    ],
)
def test_start_cycle_with_bad_input_shows_the_error_next_to_the_field(
    as_owner: Any, project: Any, change: dict[str, str], field: str, message: str
) -> None:
    response = as_owner.post(reverse("dashboard:cycle-start", args=[project.pk]), {**START, **change})
    assert response.status_code == 422
    errors = errors_of(response.content.decode(), field)
    assert any(message in e for e in errors), (field, errors)
    assert not Cycle.objects.filter(project=project).exists()


def test_start_cycle_while_one_is_open_says_which_and_links_to_it(as_owner: Any, project: Any) -> None:
    open_cycle = cycle_create(project=project, budget=5)
    response = as_owner.post(reverse("dashboard:cycle-start", args=[project.pk]), START)
    assert response.status_code == 422
    page = response.content.decode()
    link = reverse("dashboard:cycle-detail", args=[project.pk, open_cycle.number])
    assert f'<a href="{link}">Cycle 1</a> is still open (created)' in page
    assert Cycle.objects.filter(project=project).count() == 1


def test_project_page_says_when_test_labels_are_too_few_for_a_curve(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=4)
    mv = ModelVersion.objects.create(
        project=project,
        version=1,
        status="ready",
        label_count=20,
        metrics={"accuracy": 0.9, "macro_f1": 0.9, "labels": {"training": 20, "valid": 5, "test": 8}},
    )
    Cycle.objects.filter(pk=cycle.pk).update(model_version=mv)
    page = as_owner.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    assert 'id="curve-wait"' in page and "(8 of 30)" in page
    assert 'data-chart="learning-curve"' not in page  # no curve drawn from 8 test labels
