"""Item counts per project, split, state and labeled-or-not, kept by the database itself (issue 20, load held).

The dashboard's project list and project page and the API's item pages showed counts by counting a project's items
at every request: about 0.2 to 0.5 s per million items on two cores, per count, per request. These rows answer the same
counts from a handful of rows.

Postgres keeps them: statement-level triggers on `campaigns_item` (migration 0023) append, for every INSERT, UPDATE
or DELETE statement, one row per (project, split, state, labeled) whose count it changed, with the signed change in
`n`. Every writer is covered (imports by COPY, bulk updates, the admin, raw SQL), in the writer's own transaction, and
appending takes no lock another writer waits for: a count is the sum of its rows. `item_counts_compact` folds a
project's rows into one per key. Other databases (SQLite in `make run`) have no such triggers: there the selectors
count the items themselves (`campaigns.selectors.items.item_counts_kept`).
"""

from __future__ import annotations

from django.db import models


class ItemCount(models.Model):
    # A plain column, not a foreign key: the triggers append rows while a project's items are being deleted, after
    # Django collected what the project's deletion cascades to. Rows of deleted projects are dropped when compacted.
    project_id = models.BigIntegerField()
    split = models.CharField(max_length=8)
    state = models.CharField(max_length=8)
    labeled = models.BooleanField()
    n = models.BigIntegerField(help_text="Signed change of the count (or, once compacted, the count).")

    class Meta:
        indexes = [
            # Every read: SELECT split, state, labeled, sum(n) WHERE project_id IN (…) GROUP BY …
            models.Index(fields=["project_id"], name="itemcount_project"),
        ]

    def __str__(self) -> str:
        labeled = "labeled" if self.labeled else "unlabeled"
        return f"project {self.project_id} {self.split}/{self.state}/{labeled}: {self.n}"
