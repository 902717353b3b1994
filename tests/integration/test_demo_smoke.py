"""A short smoke of `make demo` (1 seed, 2 cycles): the main job cannot silently break.

The whole loop runs for real: training, MC-dropout scoring, selection, sync to the real Label Studio, the oracle
annotating there, the pull back, the report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from campaigns.models import Annotation, Cycle, Item, Project

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]


def test_demo_smoke_runs_the_loop_through_label_studio(tmp_path: Path, ls_settings: Any, mlflow_store: str) -> None:
    out = io.StringIO()
    call_command(
        "demo", seeds=1, cycles=2, budget=15, epochs=10, mc_iterations=5, limit=500, out=tmp_path / "report", stdout=out
    )
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    result = json.loads(last.removeprefix("RESULT "))
    assert result["cycles"] >= 1 and result["seeds"] == 1
    assert 0 < result["final_accuracy"] <= 1 and 0 < result["random_final_accuracy"] <= 1
    assert (tmp_path / "report" / "learning_curves.png").exists()
    assert "labels_fraction_vs_random" in (tmp_path / "report" / "report.md").read_text()
    projects = Project.objects.filter(name__startswith="Simulation")
    assert projects.count() == 2
    for project in projects:
        # Two closed cycles of 15 training labels each plus the evaluation sample (validation and test, sent with
        # the first cycle), every label from an oracle annotation pulled from Label Studio.
        assert Cycle.objects.filter(project=project, state="closed").count() == 2
        training = Item.objects.filter(project=project, label__isnull=False, split="pool")
        evaluation = Item.objects.filter(project=project, label__isnull=False, split__in=["valid", "test"])
        assert training.count() == 30 and evaluation.count() > 0
        labeled = Item.objects.filter(project=project, label__isnull=False)
        assert set(labeled.values_list("label_source", flat=True)) == {"annotation"}
        assert Annotation.objects.filter(project=project).count() == labeled.count()
        assert all(i.label == i.ground_truth for i in labeled)
