"""`manage.py export_items PROJECT --format F --out PATH`: the export service, synchronously, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from campaigns.management.projects import project_by_ref
from campaigns.models import ExportFormat
from campaigns.services.exports import export_extension, project_export


class Command(BaseCommand):
    help = "Export a project's labeled items (or cycle N's training snapshot) to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project id or name")
        parser.add_argument("--format", required=True, choices=ExportFormat.values)
        parser.add_argument("--out", required=True, type=Path, help="the file to write (a .zip with media)")
        parser.add_argument("--as-of-cycle", type=int, help="the training set of this cycle's model")
        parser.add_argument("--include-media", action="store_true", help="put the images in the archive")
        parser.add_argument("--all-items", action="store_true", help="unlabeled items too")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = project_by_ref(opts["project"])
        expected = export_extension(fmt=opts["format"], include_media=opts["include_media"])
        if opts["out"].suffix.lower() != expected:
            self.stderr.write(self.style.WARNING(f"note: a {opts['format']} export is a {expected} file"))
        bar = tqdm(unit=" rows", disable=opts["verbosity"] == 0, file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            outcome = project_export(
                project=project,
                out=opts["out"],
                fmt=opts["format"],
                as_of_cycle=opts["as_of_cycle"],
                include_media=opts["include_media"],
                include_unlabeled=opts["all_items"],
                progress=progress,
            )
        except ValidationError as exc:
            reasons = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(f"nothing exported: {reasons}") from exc
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(f"{outcome.rows} rows written to {opts['out']}"))
        if outcome.matches is not None:
            verdict = "matches" if outcome.matches else "DOES NOT match"
            self.stdout.write(f"training-set hash {outcome.training_set_hash} {verdict} the model version's")
            if not outcome.matches:
                raise CommandError("the snapshot differs from the recorded training set")
