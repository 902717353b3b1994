"""`manage.py simulate PROJECT`: what active learning would save on a project's own labeled data.

Runs the chosen strategies and random sampling with paired seeds through the product's loop on sandbox copies of the
project (its labels become the oracle's answer key), and prints the comparison; `--json` writes it as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.management.projects import project_by_ref
from campaigns.models import Heuristic
from campaigns.services.comparison import ComparisonError, noise_validate, project_compare_strategies


class Command(BaseCommand):
    help = "Compare strategies with random sampling on a project's own labels (a simulation; the project is untouched)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project id or name")
        parser.add_argument("--strategies", default="topk", help="comma-separated, compared with random")
        parser.add_argument("--heuristic", default=Heuristic.MARGIN, choices=Heuristic.values)
        parser.add_argument("--seeds", type=int, default=3)
        parser.add_argument("--cycles", type=int, default=4)
        parser.add_argument("--budget", type=int, default=20)
        parser.add_argument(
            "--noise-rate", type=float, default=0.0, help="the simulated annotator's share of wrong answers, [0, 1)"
        )
        parser.add_argument(
            "--annotators",
            default="",
            help="several simulated annotators by error rate, e.g. 0.05,0.2,0.3 (the project's annotators per task "
            "answer each item)",
        )
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = project_by_ref(opts["project"])
        strategies = [s.strip() for s in opts["strategies"].split(",") if s.strip()]
        try:
            rates = [float(r) for r in opts["annotators"].split(",") if r.strip()]
        except ValueError as exc:
            raise CommandError(f"--annotators: error rates separated by commas ({exc})") from exc
        try:
            noise = noise_validate(noise_rate=opts["noise_rate"], annotators=rates)
            report = project_compare_strategies(
                project=project,
                strategies=strategies,
                seeds=opts["seeds"],
                cycles=opts["cycles"],
                budget=opts["budget"],
                heuristic=opts["heuristic"],
                on_progress=lambda done, total: self.stderr.write(f"  {done}/{total} runs"),
                noise=noise,
            )
        except ComparisonError as exc:
            raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.reason}") from exc
        if opts["as_json"]:
            self.stdout.write(json.dumps(report.as_json()))
            return
        self.stdout.write(f"{project.name}: {report.seeds} seeds x {report.cycles} cycles of {report.budget} labels")
        if noise.rate or noise.annotators:
            who = f"annotators with error rates {list(noise.annotators)}" if noise.annotators else f"{noise.rate}"
            self.stdout.write(f"  simulated annotators: {who}")
        for arm in report.arms:
            auc, gain, frac = arm.auc.as_json(), arm.auc_gain.as_json(), arm.labels_fraction.as_json()
            self.stdout.write(
                f"  {arm.strategy:10s} AUC {auc[0]} [{auc[1]}, {auc[2]}]  gain vs random {gain[0]} [{gain[1]}, "
                f"{gain[2]}]  labels vs random {frac[0]} [{frac[1]}, {frac[2]}]"
            )
        self.stdout.write(report.recommendation)
