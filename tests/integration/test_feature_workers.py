"""An import sends its items' features to the scoring workers (issue 20): with a real worker and the real MiniLM
encoder, every imported text item gets its cached embedding without any cycle running. The admin's queues page
lists that worker under the queues it consumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.test import Client

from campaigns.models import ItemEmbedding
from campaigns.services.feature_fanout import features_status
from campaigns.services.features import TEXT_ENCODER
from campaigns.services.items import items_import
from tests.factories import ProjectFactory, UserFactory
from tests.worker import Worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def test_an_import_fills_the_feature_cache_on_the_workers(tmp_path: Path, celery_worker: Worker) -> None:
    project = ProjectFactory(task_type="text_classification", labels=["pos", "neg"])
    rows = "\n".join(f"r{i},the parcel arrived {'late' if i % 2 else 'early'} number {i}" for i in range(20))
    (tmp_path / "items.csv").write_text("key,text\n" + rows + "\n")

    items_import(project=project, path=tmp_path / "items.csv")

    done = wait_for(
        lambda: (s := features_status(project=project)).ready == 20 and s,
        timeout=180,
        what="the imported items' embeddings",
        worker=celery_worker,
    )
    assert done.key == TEXT_ENCODER and done.items == 20
    vectors = ItemEmbedding.objects.filter(item__project=project, encoder=TEXT_ENCODER).values_list("vector", flat=True)
    norms = [float(np.linalg.norm(np.frombuffer(bytes(v), dtype=np.float32))) for v in vectors]
    assert len(norms) == 20 and all(abs(n - 1.0) < 1e-3 for n in norms)  # MiniLM's embeddings are L2-normalised

    # The same worker, as the admin's queues page sees it: consuming the scoring queue.
    admin = Client()
    admin.force_login(UserFactory(username="ops", is_staff=True))
    rows = {r.name: r for r in admin.get("/admin/queues/").context["rows"]}
    assert any(w.startswith("worker@") for w in rows["cpu"].workers), rows
