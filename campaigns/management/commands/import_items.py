"""`manage.py import_items PROJECT PATH`: the ingest service with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from campaigns.ingest.rows import ItemImportError
from campaigns.ingest.tiling import parse_tile
from campaigns.management.projects import project_by_ref
from campaigns.services.items import FORMATS, items_import


class Command(BaseCommand):
    help = "Import items (CSV, JSONL, COCO JSON, a folder or zip of images) into a project. All or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project id or name")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument("--tile", help="cut each image into COLSxROWS tiles, e.g. 6x4")
        parser.add_argument("--labels-from-folders", action="store_true", help="label = first folder of each image")
        parser.add_argument("--as-ground-truth", action="store_true", help="store labels as hidden ground truth")
        parser.add_argument("--batch-size", type=int)

    def handle(self, *args: Any, **opts: Any) -> None:
        project = project_by_ref(opts["project"])
        try:
            tile = parse_tile(opts["tile"]) if opts["tile"] else None
        except ValueError as exc:
            raise CommandError(f"--tile: {exc}") from exc
        bar = tqdm(unit=" rows", disable=opts["verbosity"] == 0, file=self.stderr._out)
        seen = 0

        def progress(n: int) -> None:
            nonlocal seen
            bar.update(n - seen)
            seen = n

        try:
            result = items_import(
                project=project,
                path=opts["path"],
                fmt=opts["format"],
                tile=tile,
                label_from_dir=opts["labels_from_folders"],
                labels_as_ground_truth=opts["as_ground_truth"],
                batch_size=opts["batch_size"],
                progress=progress,
            )
        except ItemImportError as exc:
            raise CommandError(f"import failed, nothing was imported: {exc}") from exc
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.rows} rows: {result.created} new items, {result.unchanged} already present, "
                f"{result.labeled} labels applied, {result.files_stored} files stored"
            )
        )
        for conflict in result.conflict_rows:
            self.stdout.write(
                self.style.WARNING(
                    f"{conflict['file']}:{conflict['line']}: {conflict['field']}: {conflict['reason']} "
                    f"(key {conflict['key']})"
                )
            )
        if result.conflicts:
            self.stdout.write(self.style.WARNING(f"{result.conflicts} rows conflict and were not applied"))
