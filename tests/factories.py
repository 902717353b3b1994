"""factory_boy factories; services remain the way production code creates rows."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from campaigns.models import Annotation, Cycle, Item, Membership, Project, Score, SelectedItem, Selection
from models_registry.models import ModelVersion


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"project {n}")
    task_type = "text_classification"
    labels = factory.LazyFunction(lambda: ["positive", "negative", "neutral"])
    owner = factory.SubFactory(UserFactory)

    @factory.post_generation
    def owner_membership(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            Membership.objects.get_or_create(project=self, user=self.owner, defaults={"role": "owner"})


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    key = factory.Sequence(lambda n: f"item-{n}")
    split = "pool"
    text = factory.Sequence(lambda n: f"text number {n}")


class AnnotationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Annotation

    item = factory.SubFactory(ItemFactory)
    project = factory.SelfAttribute("item.project")
    ls_annotation_id = factory.Sequence(lambda n: 1000 + n)
    ls_task_id = factory.Sequence(lambda n: 5000 + n)
    annotator = "ann@example.com"
    result = factory.LazyFunction(lambda: [{"type": "choices", "value": {"choices": ["positive"]}}])
    value = "positive"
    lead_time = 3.5


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: n + 1)
    status = "ready"
    architecture = "mlp"
    metrics = factory.LazyFunction(lambda: {"accuracy": 0.8, "macro_f1": 0.7})


class CycleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cycle

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    state = "closed"
    progress = factory.LazyFunction(lambda: {"stage": "scoring", "done": 50, "total": 200})


class ScoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Score

    cycle = factory.SubFactory(CycleFactory)
    item = factory.SubFactory(ItemFactory, project=factory.SelfAttribute("..cycle.project"))
    uncertainty = 0.5
    heuristic = "bald"


class SelectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Selection

    cycle = factory.SubFactory(CycleFactory)
    strategy = "topk"
    params = factory.LazyFunction(lambda: {"budget": 10})
    size = 1


class SelectedItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SelectedItem

    selection = factory.SubFactory(SelectionFactory)
    item = factory.SubFactory(ItemFactory, project=factory.SelfAttribute("..selection.cycle.project"))
    rank = factory.Sequence(lambda n: n + 1)
    uncertainty = 0.9


def scored_cycle(project: Any, *, n: int = 30, state: str = "scored", **fields: Any) -> Cycle:
    """A cycle of `project` with a ready model version and `n` pool items scored 0, 1/n, ... (n-1)/n, predicted labels
    cycling through the project's, and the score statistics frozen as the scoring service leaves them."""
    from campaigns.services.score_stats import score_stats_freeze

    model_version = ModelVersionFactory(project=project)
    fields.setdefault("budget", 5)
    cycle = CycleFactory(project=project, state=state, model_version=model_version, **fields)
    items = ItemFactory.create_batch(n, project=project)
    labels = list(project.labels)
    Score.objects.bulk_create(
        Score(
            cycle=cycle,
            item=item,
            uncertainty=i / n,
            heuristic="bald",
            predicted_label=labels[i % len(labels)],
            confidence=1 - i / n,
        )
        for i, item in enumerate(items)
    )
    score_stats_freeze(cycle=cycle)
    return cycle
