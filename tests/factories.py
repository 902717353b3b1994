"""factory_boy factories; services remain the way production code creates rows."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from campaigns.models import Item, Membership, Project


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
