"""`manage.py seed_demo OWNER`: the demo projects `make run` shows, ready to run a cycle from the dashboard.

- "Digits (demo)": scikit-learn's digits rendered as PNG images, a skewed class balance with near-duplicates;
- "Support topics (demo)": generated short reviews about four topics, on the MiniLM text path.
Ground truth is imported hidden (for evaluation and simulation); a few items per project start labeled so the
first cycle trains a model. Idempotent: existing demo projects are left as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from campaigns.demo_data import DIGIT_LABELS, TOPIC_LABELS, write_digits, write_topics
from campaigns.ingest.rows import split_for_key
from campaigns.models import Item, LabelSource, Project
from campaigns.services.items import items_import
from campaigns.services.label_history import item_labels_set
from campaigns.services.projects import project_create
from integrations.labelstudio.connect import labelstudio_connect_project

SPLITS = {"train": 0.0, "valid": 0.15, "test": 0.25, "pool": 0.6}
SEED_LABELS = 30  # labeled at start, so the first cycle trains instead of cold-starting


class Command(BaseCommand):
    help = "Create the demo projects (digits images, support topics text) for a user. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("owner", help="username of the projects' owner")
        parser.add_argument("--no-labelstudio", action="store_true", help="do not create the Label Studio projects")

    def handle(self, *args: Any, **opts: Any) -> None:
        owner = get_user_model().objects.filter(username=opts["owner"]).first()
        if owner is None:
            raise CommandError(f"no user {opts['owner']!r}")
        folder = Path(settings.VAR_DIR) / "demo-data"
        specs = [
            ("Digits (demo)", "image_classification", DIGIT_LABELS, {"image_size": 16, "channels": 1}),
            ("Support topics (demo)", "text_classification", TOPIC_LABELS, {}),
        ]
        for name, task_type, labels, model_config in specs:
            project = Project.objects.filter(owner=owner, name=name).first()
            if project is None:
                if task_type == "image_classification":
                    data = write_digits(
                        folder / "digits",
                        skew=0.5,
                        size=16,
                        duplicates=4,
                        balanced=lambda key: split_for_key(key, SPLITS) != "pool",
                    )
                else:
                    data = write_topics(folder / "topics", n=1200)
                with transaction.atomic():
                    project = project_create(
                        owner=owner,
                        name=name,
                        task_type=task_type,
                        labels=labels,
                        split_ratios=SPLITS,
                        model_config=model_config,
                        default_budget=20,
                    )
                    items_import(project=project, path=data, labels_as_ground_truth=True)
                    self._seed_labels(project)
                self.stdout.write(f"created {name}: {project.items.count()} items")
            if not opts["no_labelstudio"] and project.ls_project_id is None:
                labelstudio_connect_project(project=project)
                self.stdout.write(f"{name}: Label Studio project created")

    @staticmethod
    def _seed_labels(project: Project) -> None:
        """Give a few pool items their ground truth as label, one class after another, as a first labeling pass."""
        picked: list[Item] = []
        for label in project.labels:
            picked += list(Item.objects.filter(project=project, split="pool", ground_truth=label).order_by("pk")[:3])
        item_labels_set(
            labels={item.pk: item.ground_truth for item in picked[:SEED_LABELS]},
            source=LabelSource.IMPORT,
            reason="seed_demo: a first labeling pass from the ground truth",
        )
