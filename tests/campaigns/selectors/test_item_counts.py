"""The item counts Postgres keeps (migration 0023's triggers) against the items themselves, after every kind of write:
ORM saves, bulk inserts, the import service (COPY, then INSERT … ON CONFLICT), bulk and queryset updates, raw SQL,
deletes, a rolled-back transaction, a project's deletion; and the compaction that folds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from campaigns import selectors
from campaigns.models import Item, ItemCount, ItemState, Project
from campaigns.selectors import item_counts
from campaigns.selectors.item_counts import ItemCountRow, items_counts
from campaigns.services.item_counts import item_counts_compact
from campaigns.services.items import items_import
from campaigns.services.projects import project_delete
from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def counted(project: Project) -> set[ItemCountRow]:
    """The truth: the project's items grouped and counted."""
    rows: dict[tuple[str, str, bool], int] = {}
    for split, state, label in Item.objects.filter(project=project).values_list("split", "state", "label"):
        key = (split, state, label is not None)
        rows[key] = rows.get(key, 0) + 1
    return {ItemCountRow(*key, n) for key, n in rows.items()}


def kept(project: Project) -> set[ItemCountRow]:
    return set(items_counts(project=project))


def test_kept_counts_follow_every_kind_of_item_write(tmp_path: Path) -> None:
    project, other = ProjectFactory(), ProjectFactory()
    ItemFactory(project=other, key="elsewhere")
    ItemFactory.create_batch(3, project=project, split="train", label="positive")
    Item.objects.bulk_create([Item(project=project, key=f"b{i}", split="pool", text="t") for i in range(40)])
    assert (
        kept(project)
        == counted(project)
        == {
            ItemCountRow("train", "active", True, 3),
            ItemCountRow("pool", "active", False, 40),
        }
    )

    csv = tmp_path / "items.csv"
    rows = "".join(f"k{i},text {i},{'negative' if i % 5 == 0 else ''}\n" for i in range(60))
    csv.write_text("key,text,label\n" + rows)
    items_import(project=project, path=csv)
    items_import(project=project, path=csv)  # the same keys again: nothing inserted, nothing counted twice
    assert kept(project) == counted(project)

    pool = list(Item.objects.filter(project=project, split="pool").order_by("pk"))
    Item.objects.filter(pk__in=[i.pk for i in pool[:7]]).update(label="neutral", label_source="annotation")
    pool[10].label = "positive"
    pool[10].save()
    for item in pool[11:14]:
        item.state = ItemState.INVALID
    Item.objects.bulk_update(pool[11:14], ["state"])
    Item.objects.filter(pk=pool[20].pk).update(ls_task_id=99)  # a column counts do not depend on
    with connection.cursor() as cur:
        cur.execute("UPDATE campaigns_item SET label = NULL WHERE id = %s", [pool[0].pk])
        cur.execute(
            "INSERT INTO campaigns_item (project_id, key, split, state, text, media, url, metadata, source,"
            " label_source, label_error, created_at) SELECT %s, 'raw-' || g, 'test', 'skipped', '', '', '', '{}', '',"
            " '', '', now() FROM generate_series(1, 5) g",
            [project.pk],
        )
    Item.objects.filter(pk__in=[i.pk for i in pool[30:35]]).delete()
    assert kept(project) == counted(project)
    assert kept(other) == counted(other) == {ItemCountRow("pool", "active", False, 1)}


def test_a_rolled_back_write_leaves_the_counts_as_they_were() -> None:
    project = ProjectFactory()
    ItemFactory.create_batch(4, project=project)
    before = kept(project)
    with pytest.raises(RuntimeError), transaction.atomic():
        Item.objects.bulk_create([Item(project=project, key=f"gone{i}", split="pool") for i in range(10)])
        Item.objects.filter(project=project).update(label="positive")
        raise RuntimeError("the import failed half-way")
    assert kept(project) == before == counted(project)


def test_selectors_read_the_kept_counts_and_agree_with_counting(monkeypatch: Any) -> None:
    project = ProjectFactory()
    ItemFactory.create_batch(5, project=project, split="pool")
    ItemFactory.create_batch(2, project=project, split="pool", label="positive")
    ItemFactory.create_batch(3, project=project, split="test", label="negative")
    ItemFactory.create_batch(1, project=project, split="valid", state=ItemState.SKIPPED)
    expected_split = {
        "by_split": {
            "pool": {"total": 7, "labeled": 2},
            "test": {"total": 3, "labeled": 3},
            "valid": {"total": 1, "labeled": 0},
        },
        "total": 11,
        "labeled": 5,
    }
    expected_state = {"active": 10, "invalid": 0, "skipped": 1}
    for kept_here in (True, False):  # False: the path of a database without the triggers (SQLite)
        monkeypatch.setattr(item_counts, "item_counts_kept", lambda kept_here=kept_here: kept_here)
        assert selectors.items_count_by_split(project=project) == expected_split
        assert selectors.items_count_by_state(project=project) == expected_state
        assert selectors.items_count_matching(project=project) == 11
        assert selectors.items_count_matching(project=project, split="pool", labeled=False) == 5
        assert selectors.items_count_matching(project=project, labeled=True, state="active") == 5
        assert selectors.items_count_matching(project=project, state="skipped", split="test") == 0
        listed = selectors.projects_with_counts_for_user(user=project.owner).get(pk=project.pk)
        assert (listed.item_count, listed.labeled_count) == (11, 5)


def test_compaction_folds_rows_and_drops_deleted_projects() -> None:
    project, doomed = ProjectFactory(), ProjectFactory()
    for i in range(6):  # one statement each: six rows to fold
        ItemFactory(project=project, key=f"one-by-one-{i}")
    Item.objects.filter(project=project, key__in=["one-by-one-0", "one-by-one-1"]).update(label="positive")
    ItemFactory.create_batch(3, project=doomed)
    doomed_id = doomed.pk
    project_delete(project=doomed)
    assert ItemCount.objects.filter(project_id=project.pk).count() > 2
    assert ItemCount.objects.filter(project_id=doomed_id).exists()  # the deletion appended its own rows

    removed = item_counts_compact()

    assert removed > 0
    assert not ItemCount.objects.filter(project_id=doomed_id).exists()
    assert ItemCount.objects.filter(project_id=project.pk).count() == 2  # pool unlabeled, pool labeled
    assert kept(project) == counted(project)
    assert item_counts_compact(project_id=project.pk) == 0  # folded already
