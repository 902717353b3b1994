"""Admin (issue 15): an item's label history is on its page, view-only; suspects and reviews have lists."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from campaigns.models import LabelQualityRun, LabelReview, LabelSuspect, RunState
from campaigns.services.label_history import item_labels_set
from tests.factories import CycleFactory, ItemFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def test_item_page_shows_its_label_history(admin_client: Any) -> None:
    item = ItemFactory()
    item_labels_set(labels={item.pk: "negative"}, source="import", reason="first file")
    item_labels_set(labels={item.pk: "positive"}, source="review", annotator="rev@example.com", reason="review 7")
    response = admin_client.get(reverse("admin:campaigns_item_change", args=[item.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "label history" in body.lower()
    assert "first file" in body and "rev@example.com" in body and "review 7" in body
    # History rows are records: no add row, no delete box.
    assert "labelchange_set-__prefix__" not in body and "label_changes-__prefix__" not in body
    filtered = admin_client.get(reverse("admin:campaigns_item_changelist"), {"label_source": "review"})
    assert filtered.status_code == 200 and item.key in filtered.content.decode()


def test_suspects_and_reviews_lists_load(admin_client: Any) -> None:
    item = ItemFactory(label="positive")
    run = LabelQualityRun.objects.create(
        project=item.project,
        cycle=CycleFactory(project=item.project),
        model_version=ModelVersionFactory(project=item.project),
        state=RunState.DONE,
    )
    suspect = LabelSuspect.objects.create(
        run=run, item=item, rank=1, quality=0.01, label="positive", suggested_label="neutral", suggested_probability=0.8
    )
    review = LabelReview.objects.create(project=item.project, item=item, suspect=suspect, label_before="positive")
    for model, obj in (("labelsuspect", suspect), ("labelreview", review)):
        assert admin_client.get(reverse(f"admin:campaigns_{model}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:campaigns_{model}_change", args=[obj.pk])).status_code == 200
    assert admin_client.get(reverse("admin:campaigns_labelreview_add")).status_code == 403
