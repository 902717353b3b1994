"""`manage.py export_items PROJECT --format F --out PATH`: synchronous, a bad option is a CommandError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from campaigns.models import Item

pytestmark = pytest.mark.django_db


def test_export_items_writes_the_file(make_project: Any, tmp_path: Path) -> None:
    project = make_project()
    Item.objects.create(project=project, key="a", split="train", text="a", label="positive")
    out = tmp_path / "out.jsonl"
    call_command("export_items", str(project.pk), "--format", "jsonl", "--out", str(out), verbosity=0)
    assert '"key": "a"' in out.read_text()


def test_export_items_refuses_an_unknown_cycle(make_project: Any, tmp_path: Path) -> None:
    project = make_project()
    with pytest.raises(CommandError, match="as_of_cycle"):
        call_command(
            "export_items", project.name, "--format", "csv", "--out", str(tmp_path / "x.csv"), "--as-of-cycle", "2"
        )
