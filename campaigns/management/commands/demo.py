"""`manage.py demo` (`make demo`): simulation campaigns through the real Label Studio with the oracle annotator.

The product's default strategy (what a new project gets: margin top-k, T = 20) and a random baseline run with the
same seeds and budgets on scikit-learn's digits drawn i.i.d. (pool, validation and test from the same distribution:
no skew, no planted duplicates, unless asked for); the report goes to var/reports/ and the last line printed is
`RESULT {json}`. Both arms start from the same first batch (`--cold-start`, random by default, with the same seed):
the cold-start method is an ablation of its own, not part of one arm. The evaluation sample is labeled by the
oracle through Label Studio like any task, and its labels count: the curves are against labels spent.

The project's learning-efficiency figures come from `bench/learning.py` (`docs/learning.md`): paired seeds over
four datasets with intervals. This command is the quick, unattended end-to-end run of the whole loop.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import ColdStart, Cycle, Project
from campaigns.services.demo_report import Arm, write_report
from campaigns.services.items import items_import
from campaigns.services.projects import project_create
from campaigns.services.simulation import comparison_arms, simulation_run
from devtools.labelstudio import server
from integrations.labelstudio.connect import labelstudio_connect_project

SPLITS = {"train": 0.0, "valid": 0.15, "test": 0.25, "pool": 0.6}


class Command(BaseCommand):
    help = "Compare an active-learning strategy with random sampling, unattended, through Label Studio."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seeds", type=int, default=3)
        parser.add_argument("--cycles", type=int, default=10)
        parser.add_argument("--budget", type=int, default=20, help="labels per cycle")
        # One default everywhere: a new project's (Project.default_heuristic, Cycle.strategy's default).
        parser.add_argument("--heuristic", default=Project._meta.get_field("default_heuristic").get_default())
        parser.add_argument("--strategy", default=Cycle._meta.get_field("strategy").get_default())
        parser.add_argument("--mc-iterations", type=int, default=20)
        parser.add_argument(
            "--cold-start",
            default=ColdStart.RANDOM,
            choices=ColdStart.values,
            help="the first batch of every arm (the same items for both): its own ablation, never one arm's head start",
        )
        parser.add_argument("--skew", type=float, default=0.0, help="thin digit d by 1 - skew*d/9 (0: i.i.d.)")
        parser.add_argument("--duplicates", type=int, default=0, help="near-duplicates added per common digit")
        parser.add_argument("--epochs", type=int, default=30)
        parser.add_argument("--limit", type=int, default=None, help="use only this many digits (a quick smoke)")
        parser.add_argument("--out", type=Path, default=None, help="report folder (default var/reports/<time>)")

    def handle(self, *args: Any, **opts: Any) -> None:
        started = time.monotonic()
        server = self._label_studio()
        out = opts["out"] or settings.VAR_DIR / "reports" / time.strftime("demo-%Y%m%d-%H%M%S")
        owner, _ = get_user_model().objects.get_or_create(username="demo")
        data = write_digits(
            Path(out) / "data",
            skew=opts["skew"],
            size=16,
            duplicates=opts["duplicates"],
            limit=opts["limit"],  # a skew, if asked for, thins every split alike: test keeps the pool's distribution
        )
        arms: dict[str, list[Any]] = {"strategy": [], "random": []}
        arm_params = comparison_arms(
            strategy=opts["strategy"],
            heuristic=opts["heuristic"],
            cold_start=opts["cold_start"],
            mc_iterations=opts["mc_iterations"],
        )
        for seed in range(opts["seeds"]):
            for arm in arms:
                label = "random" if arm == "random" else f"{opts['heuristic']}/{opts['strategy']}"
                project = project_create(
                    owner=owner,
                    name=f"Simulation {time.strftime('%Y-%m-%d %H:%M:%S')} {label} seed {seed}",
                    task_type="image_classification",
                    labels=DIGIT_LABELS,
                    split_ratios=SPLITS,
                    model_config={"image_size": 16, "channels": 1, "epochs": opts["epochs"]},
                )
                items_import(project=project, path=data)
                labelstudio_connect_project(project=project)
                t0 = time.monotonic()
                curve = simulation_run(
                    project=Project.objects.get(pk=project.pk),
                    cycles=opts["cycles"],
                    budget=opts["budget"],
                    seed=seed,
                    **arm_params[arm],
                )
                arms[arm].append(curve)
                self.stdout.write(
                    f"{arm} seed {seed}: "
                    + ", ".join(f"{p.labels}→{p.accuracy:.3f}" for p in curve)
                    + f" ({time.monotonic() - t0:.0f} s)"
                )
        name = f"{opts['heuristic']}/{opts['strategy']}"
        summary = write_report(
            Path(out),
            strategy=Arm(name, arms["strategy"]),
            baseline=Arm("random", arms["random"]),
            setup={
                "dataset": f"digits (skew {opts['skew']}, {opts['duplicates']} near-duplicates; every split alike)",
                "strategy": name,
                "seeds": opts["seeds"],
                "cycles": opts["cycles"],
                "budget per cycle": opts["budget"],
                "mc_iterations": opts["mc_iterations"],
                "cold start (both arms)": opts["cold_start"],
            },
        )
        summary["minutes"] = round((time.monotonic() - started) / 60, 1)
        summary["report"] = str(Path(out) / "report.md")
        self.stdout.write(f"report: {Path(out) / 'report.md'}")
        if server is not None and server.process is not None:
            server.stop()  # started for this run only
        self.stdout.write("RESULT " + json.dumps(summary))

    def _label_studio(self) -> Any:
        """Without a configured Label Studio, start (or reuse) the local one `make run` uses."""
        if settings.LABEL_STUDIO_API_KEY:
            return None
        ls = server.ensure_running(
            data_dir=settings.VAR_DIR / "labelstudio", port=int(os.environ.get("ALWEB_LS_PORT", "8080"))
        )
        settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = ls.url, ls.pat
        self.stdout.write(f"Label Studio at {ls.url} (login {ls.username} / {ls.password})")
        return ls
