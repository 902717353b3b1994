"""`manage.py simulations_cleanup`: delete what lost simulation runs left behind.

A run whose worker died is restarted cleanly when its message is redelivered; this is for the rest: a run still
"running" past a task's hard time limit (its message lost with the broker) is failed, and sandboxes whose run is
over, or that the `simulate` command left (no run) and are older than `--older-than-hours`, are deleted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from campaigns.services.simulation_runs import simulations_cleanup


class Command(BaseCommand):
    help = "Fail lost simulation runs and delete the sandboxes they (or a crashed `simulate`) left behind."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-hours",
            type=float,
            default=24.0,
            help="delete a sandbox the simulate command left only once it is this old (it may still be running)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        outcome = simulations_cleanup(unowned_older_than=timedelta(hours=opts["older_than_hours"]))
        self.stdout.write(f"{outcome.runs_failed} lost runs failed, {outcome.sandboxes_deleted} sandboxes deleted")
