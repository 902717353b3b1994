"""Folding the item counts Postgres keeps (campaigns/models/item_counts.py) so that reading one stays a few rows.

Every statement that changes items appends its own rows (a count is their sum), so a project labeled one annotation
at a time gathers rows; an hourly beat task folds each project's rows into one per (split, state, labeled) and drops
the rows of deleted projects. In one statement: the rows it deletes are the rows it sums, so a writer appending
meanwhile (its rows are not visible to the statement, or not yet committed) loses nothing, and a second compaction
running at once finds the rows already gone and re-adds only what it deleted itself.
"""

from __future__ import annotations

from django.db import connection

from campaigns.models import ItemCount

COMPACT = """
WITH gone AS (
    DELETE FROM campaigns_itemcount WHERE %(project)s::bigint IS NULL OR project_id = %(project)s::bigint
    RETURNING project_id, split, state, labeled, n
)
INSERT INTO campaigns_itemcount (project_id, split, state, labeled, n)
SELECT project_id, split, state, labeled, sum(n) FROM gone
WHERE EXISTS (SELECT 1 FROM campaigns_project p WHERE p.id = gone.project_id)
GROUP BY project_id, split, state, labeled
HAVING sum(n) <> 0
"""


def item_counts_compact(*, project_id: int | None = None) -> int:
    """Fold the kept counts (of one project, or all): one row per key afterwards. Returns the rows removed."""
    if connection.vendor != "postgresql":  # nothing is kept elsewhere (see campaigns.selectors.item_counts)
        return 0
    scope = ItemCount.objects.all() if project_id is None else ItemCount.objects.filter(project_id=project_id)
    before = scope.count()
    with connection.cursor() as cur:
        cur.execute(COMPACT, {"project": project_id})
        written = cur.rowcount
    return before - written
