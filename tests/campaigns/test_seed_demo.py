"""The demo projects `make run` seeds: created once, with hidden ground truth and a few starting labels."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from campaigns.models import Item, Project

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_both_projects_once(user: Any, settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", user.username, "--no-labelstudio", stdout=io.StringIO())
    call_command("seed_demo", user.username, "--no-labelstudio", stdout=io.StringIO())
    projects = {p.name: p for p in Project.objects.filter(owner=user)}
    assert set(projects) == {"Digits (demo)", "Support topics (demo)"}
    for project in projects.values():
        items = Item.objects.filter(project=project)
        assert items.filter(ground_truth__isnull=True).count() == 0
        labeled = items.filter(label__isnull=False)
        assert 0 < labeled.count() <= 30 and all(i.label == i.ground_truth for i in labeled)
        assert items.filter(split="test").exists() and items.filter(split="pool").exists()
    digits = Item.objects.filter(project=projects["Digits (demo)"], split="pool")
    # Skewed pool: many more zeros than nines.
    assert digits.filter(ground_truth="0").count() > 3 * digits.filter(ground_truth="9").count()
