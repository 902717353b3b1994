"""An import and a settings change at the same time: the change waits for the import to commit and then sees its
items, so it cannot change the labels or split ratios the rows are being checked against halfway."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from campaigns.models import Item, Project
from campaigns.services import item_writer
from campaigns.services.items import items_import
from campaigns.services.projects import project_update


@pytest.mark.django_db(transaction=True)
def test_a_label_change_during_an_import_waits_and_is_then_refused(
    make_project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the share lock is Postgres's (SQLite serialises writers)")
    project = make_project()  # an empty project: its labels may still change
    path = tmp_path / "items.csv"
    path.write_text("key,text,label\n" + "".join(f"k{i},text {i},positive\n" for i in range(40)))

    first_batch_written, release = threading.Event(), threading.Event()
    real_write = item_writer.ItemWriter.write

    def slow_write(self: Any, rows: Any) -> int:
        written = real_write(self, rows)
        first_batch_written.set()
        assert release.wait(30), "the test never released the import"
        return written

    monkeypatch.setattr(item_writer.ItemWriter, "write", slow_write)
    outcome: dict[str, Any] = {}

    def run_import() -> None:
        try:
            outcome["import"] = items_import(project=project, path=path, batch_size=10).created
        finally:
            connection.close()

    def change_labels() -> None:
        try:
            project_update(project=Project.objects.get(pk=project.pk), labels=["cat", "dog"])
            outcome["update"] = "changed"
        except ValidationError as exc:
            outcome["update"] = exc.message_dict
        finally:
            connection.close()

    importer = threading.Thread(target=run_import)
    updater = threading.Thread(target=change_labels)
    waited = False
    importer.start()
    try:
        assert first_batch_written.wait(30)
        updater.start()
        updater.join(1.0)
        waited = updater.is_alive()
    finally:  # never leave the import's transaction open behind a failed assertion
        release.set()
        importer.join(30)
        if waited:
            updater.join(30)
    assert waited, f"the label change did not wait for the import: {outcome}"
    assert outcome["import"] == 40 and Item.objects.filter(project=project).count() == 40
    assert "labels" in outcome["update"], outcome
    assert Project.objects.get(pk=project.pk).labels == project.labels
