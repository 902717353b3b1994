"""The automatic steps: one cycle's way through the loop, one idempotent step per Celery task, and the periodic
pull. Steps a person triggers (start, send, retry, requeue, resync) live in `campaigns.services.actions`, which
imports this module and is never imported by it.

Each step claims its stage with a conditional UPDATE (or finds it already claimed by an earlier delivery of the
same task and carries on), does its slow work outside any transaction, and enqueues the next step after commit.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q

from campaigns.models import LABELED_CHUNK, Cycle, Project, ReviewState, SyncState
from campaigns.selectors import items_labeled, selected_items_of_cycle
from campaigns.services import queue
from campaigns.services.closing import cycles_close_if_labeled
from campaigns.services.cycles import InvalidTransition, cycle_progress, cycle_transition
from campaigns.services.label_quality import label_quality_queue
from campaigns.services.model_cache import model_cached
from campaigns.services.score_stats import score_stats_freeze
from campaigns.services.scoring import embed_labeled, score_chunk
from campaigns.services.scoring_plan import (
    scoring_chunk_mark_written,
    scoring_chunk_written,
    scoring_chunks_pending,
    scoring_plan_claim_completion,
    scoring_plan_make,
    scoring_progress_report,
)
from campaigns.services.selection import selection_make
from campaigns.services.training import TrainingError, external_champion, model_train_for_cycle
from campaigns.states import WAITING_FOR_LABELS, CycleState
from integrations.labelstudio.pull import project_pull_annotations
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from models_registry.models import ModelVersion

log = logging.getLogger(__name__)
S = CycleState


def _claim(cycle_id: int, stage: str, from_states: list[str]) -> Cycle | None:
    """Move the cycle into `stage`; a redelivered task finds it already there and continues. None: nothing to do."""
    try:
        cycle_transition(cycle_id=cycle_id, to=stage, from_states=from_states)
    except InvalidTransition:
        cycle = Cycle.objects.select_related("project").filter(pk=cycle_id).first()
        if cycle is None or cycle.state != stage:
            log.info("cycle %s is %s: skipping %s", cycle_id, cycle.state if cycle else "gone", stage)
            return None
    cycle_progress(cycle_id=cycle_id, stage=stage, done=0, total=0)
    return Cycle.objects.select_related("project", "model_version").get(pk=cycle_id)


def cycle_run_training(*, cycle_id: int, chain: bool = True) -> None:
    """Train (or cold-start select); then enqueue scoring unless `chain` is false (a caller running the steps
    itself, like a simulation, must not also have a worker score the same cycle)."""
    cycle = Cycle.objects.select_related("project").filter(pk=cycle_id).first()
    if cycle is None:
        log.info("cycle %s no longer exists: nothing to train", cycle_id)  # deleted with its project
        return
    external = external_champion(project=cycle.project)
    if external is not None and cycle.state in (S.CREATED, S.TRAINING) and cycle.model_version_id is None:
        # A registered external model (e.g. a detector) scores; alweb does not train it. Read at every delivery,
        # so a cycle requeued after its failed training finds a detector registered since.
        with transaction.atomic():
            cycle_transition(
                cycle_id=cycle_id, to=S.SCORING, from_states=[S.CREATED, S.TRAINING], model_version=external
            )
            if chain:
                queue.enqueue_on_commit(queue.CYCLE_SCORE, cycle_id=cycle_id)
        return
    if cycle.state == S.CREATED and not items_labeled(project=cycle.project).exists():
        # Cold start: no label to learn from, so no model; select straight from the pool.
        cycle_run_selection(cycle_id=cycle_id)
        return
    claimed = _claim(cycle_id, S.TRAINING, [S.CREATED])
    if claimed is None:
        return
    model_version = claimed.model_version
    if model_version is None or model_version.status != "ready":
        model_version = model_train_for_cycle(cycle=claimed)
        Cycle.objects.filter(pk=cycle_id).update(model_version=model_version)
        # Early stopping ends training before its planned epochs: the bar ends full at the epochs actually run.
        ran = int((model_version.params or {}).get("epochs_run") or 0)
        cycle_progress(cycle_id=cycle_id, stage=S.TRAINING, done=ran, total=ran)
    with transaction.atomic():
        cycle_transition(cycle_id=cycle_id, to=S.SCORING, from_states=[S.TRAINING])
        if chain:
            queue.enqueue_on_commit(queue.CYCLE_SCORE, cycle_id=cycle_id)
            # Suspected label errors, in a task of their own: the cycle does not wait for them.
            label_quality_queue(model_version=model_version, cycle=claimed)


def cycle_run_closing_training(*, cycle_id: int, chain: bool = True) -> ModelVersion | None:
    """After a cycle closes: train on every label so far, so the learning curve ends at the labels actually spent
    (the next cycle starts from this model when nothing changed meanwhile). Nothing for a project scored by an
    external model, or with too few labels; a training error is logged, never a reason to reopen the cycle."""
    cycle = Cycle.objects.select_related("project").filter(pk=cycle_id, state=S.CLOSED).first()
    if cycle is None or external_champion(project=cycle.project) is not None:
        return None
    try:
        model_version = model_train_for_cycle(cycle=cycle, closing=True)
    except TrainingError as exc:
        log.info("cycle %s closed: no closing model (%s)", cycle_id, exc)
        return None
    if chain:  # `chain` false: a simulation running the steps itself, whose sandbox is gone before a task runs
        with transaction.atomic():
            label_quality_queue(model_version=model_version, cycle=cycle)
    return model_version


def cycle_run_scoring(*, cycle_id: int, fan_out: bool = False) -> None:
    """Plan the cycle's scoring and get its chunks scored: sent as a group of chunk tasks to the scoring queue
    (`fan_out`, what the Celery task does: any number of workers share them), or one after the other in this
    process (a caller running the steps itself: simulations, comparisons, the tests). Either way a chunk is
    scored by `cycle_run_score_chunk`, and the one that writes the last chunk completes the cycle. A redelivered
    or requeued call sends only the chunks not yet written."""
    cycle = _claim(cycle_id, S.SCORING, [S.CREATED])
    if cycle is None:
        return
    if cycle.model_version is None:
        raise ValueError(f"cycle {cycle_id} has no model version to score with")
    plan = scoring_plan_make(cycle=cycle)
    pending = scoring_chunks_pending(cycle_id=cycle_id)
    written = plan.chunks - len(pending)
    if written:
        log.info("cycle %s: resuming scoring, %s chunks already written", cycle_id, written)
    scoring_progress_report(cycle_id=cycle_id)  # _claim zeroed the bar: show what is written already
    if not pending:
        cycle_complete_scoring(cycle_id=cycle_id)  # e.g. a retry after the completing task failed
    elif fan_out:
        queue.enqueue_group_on_commit(queue.CYCLE_SCORE_CHUNK, [{"cycle_id": cycle_id, "chunk": c} for c in pending])
        log.info("cycle %s: %s chunks sent to the scoring workers", cycle_id, len(pending))
    else:
        for chunk in pending:
            cycle_run_score_chunk(cycle_id=cycle_id, chunk=chunk)


def cycle_run_score_chunk(*, cycle_id: int, chunk: int) -> None:
    """Score one chunk (the task any scoring worker takes); then, if it was the last one missing, complete the
    cycle. A chunk already written (a redelivery) or a cycle no longer scoring (cancelled, failed, scored) costs
    one query and changes nothing."""
    cycle = Cycle.objects.select_related("project", "model_version", "scoring_plan").filter(pk=cycle_id).first()
    if cycle is None or cycle.state != S.SCORING or cycle.model_version is None or not hasattr(cycle, "scoring_plan"):
        log.info("cycle %s is %s: chunk %s not scored", cycle_id, cycle.state if cycle else "gone", chunk)
        return
    if scoring_chunk_written(cycle_id=cycle_id, chunk=chunk):
        log.info("cycle %s: chunk %s already written", cycle_id, chunk)
    else:
        model = model_cached(model_version=cycle.model_version)
        if chunk == LABELED_CHUNK:
            embed_labeled(cycle=cycle, model=model)
            with transaction.atomic():
                scoring_chunk_mark_written(cycle_id=cycle_id, chunk=chunk, scored=0, seconds=0.0)
        else:
            score_chunk(cycle=cycle, chunk=chunk, chunk_ids=cycle.scoring_plan.chunk_ids, model=model)
        scoring_progress_report(cycle_id=cycle_id, plan=cycle.scoring_plan)
    cycle_complete_scoring(cycle_id=cycle_id)


def cycle_complete_scoring(*, cycle_id: int) -> bool:
    """Move the cycle to `scored` if every chunk is written, exactly once whatever the number of workers: the plan's
    completion, the frozen statistics and the move commit together (a worker killed in between leaves all three
    undone, for the next chunk delivery or a requeue to do). Then selection follows, as after any scoring."""
    with transaction.atomic():
        if not scoring_plan_claim_completion(cycle_id=cycle_id):
            return False  # chunks still missing, or another task completed it
        cycle = Cycle.objects.select_related("project").get(pk=cycle_id)
        try:
            cycle_transition(cycle_id=cycle_id, to=S.SCORED, from_states=[S.SCORING])
        except InvalidTransition as exc:
            log.info("cycle %s: scoring not completed (%s)", cycle_id, exc)
            transaction.set_rollback(True)  # the plan stays open: a retried cycle completes it
            return False
        score_stats_freeze(cycle=cycle)
        if cycle.auto_advance:
            queue.enqueue_on_commit(queue.CYCLE_SELECT, cycle_id=cycle_id)
    log.info("cycle %s: every chunk written, scored", cycle_id)
    return True


def cycle_run_selection(*, cycle_id: int) -> None:
    cycle = Cycle.objects.select_related("project", "model_version").filter(pk=cycle_id).first()
    if cycle is None or cycle.state not in (S.SCORED, S.CREATED, S.SELECTED):
        return
    selection_make(cycle=cycle)
    cycle.refresh_from_db()
    if cycle.auto_advance and cycle.state == S.SELECTED:
        queue.enqueue_on_commit(queue.CYCLE_SYNC, cycle_id=cycle.pk)


def cycle_run_sync(*, cycle_id: int) -> None:
    cycle = _claim(cycle_id, S.SYNCING, [S.SELECTED])
    if cycle is None:
        return
    cycle_sync_to_labelstudio(cycle=cycle)
    cycle_transition(cycle_id=cycle_id, to=S.LABELING, from_states=[S.SYNCING])
    # From now on the progress counts answers received of the items selected (not the sync's items sent).
    cycles_close_if_labeled(project=cycle.project)


def projects_to_pull() -> list[int]:
    """Projects with a Label Studio project and a cycle waiting for labels, or a label in review there."""
    waiting = Q(cycles__state__in=WAITING_FOR_LABELS) | Q(
        label_reviews__state=ReviewState.OPEN, label_reviews__ls_task_id__isnull=False
    )
    return list(Project.objects.filter(waiting, ls_project_id__isnull=False).values_list("pk", flat=True).distinct())


def project_run_pull(*, project_id: int, task_ids: list[int] | None = None) -> None:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return  # deleted since the pull was queued
    project_pull_annotations(project=project, task_ids=task_ids)
    cycles_close_if_labeled(project=project)


def cycle_run_resync(*, cycle_id: int, item_ids: list[int]) -> None:
    """The resync task's work: nothing if the cycle has moved on (closed, cancelled) since it was queued."""
    cycle = Cycle.objects.filter(pk=cycle_id, state__in=WAITING_FOR_LABELS).first()
    if cycle is not None:
        cycle_sync_to_labelstudio(cycle=cycle, verify=item_ids)


def cycle_resync_failed(*, cycle_id: int, item_ids: list[int], reason: str) -> int:
    """A resync gave up (Label Studio unreachable past the retries, or an error no retry fixes): its rows are marked
    failed with the reason, so the admin's sync-state filter finds them; the next resync or sync of the cycle checks
    them against LS first and repairs them. Returns how many rows were marked."""
    rows = selected_items_of_cycle(cycle_id=cycle_id, item_ids=item_ids)
    return rows.update(sync_state=SyncState.FAILED, sync_error=f"resync failed: {reason}"[:2000])
