"""A simulation run whose worker is SIGKILLed mid-arm: the broker redelivers its message to a new worker, which takes
the run over (a new attempt), deletes the sandboxes the dead worker left and runs the comparison again to its report.

The state afterwards is asserted in alweb's database: the run, its attempt, and which sandboxes exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigns.models import Project, SimulationRun
from campaigns.services.simulation_runs import simulation_request
from tests.campaigns.services.test_comparison import topics_project
from tests.factories import ProjectFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def test_a_run_whose_worker_died_restarts_cleanly_on_redelivery(tmp_path: Path, celery_worker: Any) -> None:
    project = topics_project(lambda **kw: ProjectFactory(**kw), tmp_path, n=80)
    run = simulation_request(project=project, user=project.owner, strategies=["topk"], seeds=2, cycles=2, budget=8)

    def mid_arm() -> list[int]:
        current = SimulationRun.objects.get(pk=run.pk)
        assert current.state != "failed", current.failure_reason
        return list(Project.objects.filter(sandbox_run=run).values_list("pk", flat=True))

    orphans = wait_for(mid_arm, timeout=240, what="the worker to start an arm", worker=celery_worker)
    celery_worker.kill()
    killed = SimulationRun.objects.get(pk=run.pk)
    assert (killed.state, killed.attempt) == ("running", 1)
    assert Project.objects.filter(pk__in=orphans).exists(), "the arm ended before the worker could be killed"

    celery_worker.log = tmp_path / "worker-2.log"
    celery_worker.start()  # the unacknowledged message comes back after the visibility timeout

    def finished() -> SimulationRun | None:
        current = SimulationRun.objects.get(pk=run.pk)
        assert current.state != "failed", current.failure_reason
        return current if current.state == "done" else None

    done = wait_for(finished, timeout=600, what="the redelivered simulation to finish", worker=celery_worker)
    assert done.attempt == 2  # taken over once, by the redelivery
    assert done.progress["done"] == done.progress["total"] == 4
    assert [a["strategy"] for a in done.report["arms"]] == ["random", "topk"]
    assert not Project.objects.filter(pk__in=orphans).exists()  # the dead worker's sandboxes were deleted
    assert not Project.objects.filter(sandbox_of=project).exists()
    assert "taking over from attempt 1" in celery_worker.output()
