"""Issue 20 (load held): item counts kept by Postgres, and the labeled items' index.

`ItemCount` rows are appended by statement-level triggers on campaigns_item (transition tables: one INSERT … SELECT
… GROUP BY per statement, whatever its row count), then backfilled from the items already there. On other databases
(SQLite in `make run`) no trigger is made: the selectors count items directly there.
"""

from django.db import migrations, models

COUNTS = "INSERT INTO campaigns_itemcount (project_id, split, state, labeled, n)"

CREATE = f"""
CREATE FUNCTION campaigns_itemcount_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {COUNTS}
    SELECT project_id, split, state, label IS NOT NULL, count(*) FROM new_items GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE FUNCTION campaigns_itemcount_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {COUNTS}
    SELECT project_id, split, state, label IS NOT NULL, -count(*) FROM old_items GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

-- Only the keys whose count changed: an UPDATE of other columns (a sync's task ids) appends nothing.
CREATE FUNCTION campaigns_itemcount_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {COUNTS}
    SELECT project_id, split, state, labeled, sum(n) FROM (
        SELECT project_id, split, state, label IS NOT NULL AS labeled, 1 AS n FROM new_items
        UNION ALL
        SELECT project_id, split, state, label IS NOT NULL AS labeled, -1 AS n FROM old_items
    ) AS changes
    GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER campaigns_item_count_insert AFTER INSERT ON campaigns_item
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION campaigns_itemcount_insert();
CREATE TRIGGER campaigns_item_count_update AFTER UPDATE ON campaigns_item
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_itemcount_update();
CREATE TRIGGER campaigns_item_count_delete AFTER DELETE ON campaigns_item
    REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION campaigns_itemcount_delete();

{COUNTS}
SELECT project_id, split, state, label IS NOT NULL, count(*) FROM campaigns_item GROUP BY 1, 2, 3, 4;
"""

DROP = """
DROP TRIGGER IF EXISTS campaigns_item_count_insert ON campaigns_item;
DROP TRIGGER IF EXISTS campaigns_item_count_update ON campaigns_item;
DROP TRIGGER IF EXISTS campaigns_item_count_delete ON campaigns_item;
DROP FUNCTION IF EXISTS campaigns_itemcount_insert();
DROP FUNCTION IF EXISTS campaigns_itemcount_update();
DROP FUNCTION IF EXISTS campaigns_itemcount_delete();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0022_media_links")]

    operations = [
        migrations.CreateModel(
            name="ItemCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("project_id", models.BigIntegerField()),
                ("split", models.CharField(max_length=8)),
                ("state", models.CharField(max_length=8)),
                ("labeled", models.BooleanField()),
                (
                    "n",
                    models.BigIntegerField(help_text="Signed change of the count (or, once compacted, the count)."),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["project_id"], name="itemcount_project")],
            },
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                condition=models.Q(("label__isnull", False)), fields=["project"], name="item_labeled"
            ),
        ),
        migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP)),
    ]
