"""The simulation's oracle annotator: answers a cycle's Label Studio tasks from the items' ground truth.

It works through LS's API as a person would (one annotation per task, with a lead time), so what alweb learns
comes back through the same pull as real annotations. Idempotent: tasks that already hold an annotation by the
oracle's LS user are skipped, so a rerun after a crash answers only the rest.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from campaigns.models import Cycle, Item, Project, SelectedItem, SyncState, TaskType
from engine.label_quality import noisy_answer, simulated_answers
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.connect import labelstudio_client, labelstudio_config_info, ls_errors
from integrations.labelstudio.label_config import LabelConfigInfo

log = logging.getLogger(__name__)
SIM_DOMAIN = "alweb.local"


def oracle_annotate(*, cycle: Cycle, seed: int = 0, noise_rate: float = 0.0, annotators: Sequence[float] = ()) -> int:
    """Annotate exactly the cycle's synced tasks from Item.ground_truth; returns how many answers it gave now.
    `noise_rate`: a seeded share of classification answers flipped to another class (a careless annotator).
    `annotators`: several simulated annotators instead, by error rate: each a Label Studio user of its own
    (sim-1@alweb.local, ...; created once), and the project's annotators per task of them answer each task."""
    if annotators:
        return _annotate_as_several(cycle=cycle, seed=seed, rates=list(annotators))
    project = Project.objects.get(pk=cycle.project_id)  # fresh: the sync may have just connected it
    rows = [si for si in _synced(cycle) if si.item.ground_truth is not None]
    if not rows:
        return 0
    client = labelstudio_client(project)
    info = labelstudio_config_info(client, project)
    rng = random.Random(seed)
    answered = 0
    with ls_errors():
        me = client.users.whoami().id
        task_ids = [int(si.ls_task_id or si.item.ls_task_id or 0) for si in rows]
        done = {
            int(task["id"])
            for task in lsc.iter_tasks(client, project_id=int(project.ls_project_id or 0), task_ids=task_ids)
            if any(_author(a) == me for a in task.get("annotations") or [])
        }
        for si, task_id in zip(rows, task_ids, strict=True):
            lead_time = round(rng.uniform(2.0, 20.0), 2)  # drawn for every task: reruns answer alike
            if task_id in done:
                continue
            client.annotations.create(
                id=task_id,
                result=_result(si.item, project.task_type, info, noise=(noise_rate, seed)),
                lead_time=lead_time,
                request_options=lsc.NO_RETRY,
            )
            answered += 1
    log.info("oracle answered %s tasks of cycle %s (%s already answered)", answered, cycle.pk, len(done))
    return answered


def _annotate_as_several(*, cycle: Cycle, seed: int, rates: list[float]) -> int:
    project = Project.objects.get(pk=cycle.project_id)
    rows = [si for si in _synced(cycle) if si.item.ground_truth is not None]
    if not rows or project.task_type == TaskType.OBJECT_DETECTION:
        return 0  # boxes are answered by the single oracle: several of them would only repeat the truth
    client = labelstudio_client(project)
    info = labelstudio_config_info(client, project)
    answered = 0
    with ls_errors():
        users = _simulated_users(client, len(rates))
        task_ids = [int(si.ls_task_id or si.item.ls_task_id or 0) for si in rows]
        done = {
            (int(task["id"]), _author(a))
            for task in lsc.iter_tasks(client, project_id=int(project.ls_project_id or 0), task_ids=task_ids)
            for a in task.get("annotations") or []
        }
        for si, task_id in zip(rows, task_ids, strict=True):
            item = si.item
            said = simulated_answers(
                str(item.ground_truth),
                info.labels,
                rates=rates,
                overlap=project.annotators_per_task,
                seed=seed,
                key=item.key,
            )
            for who, answer in said:
                user = users[who]
                lead_time = round(random.Random(f"{seed}:{item.key}:{who}").uniform(2.0, 20.0), 2)
                if (task_id, user) in done:
                    continue  # idempotent per simulated annotator: a rerun answers only what is missing
                client.annotations.create(
                    id=task_id,
                    result=convert.choice_result(answer, from_name=info.from_name, to_name=info.to_name),
                    lead_time=lead_time,
                    completed_by=user,
                    request_options=lsc.NO_RETRY,
                )
                answered += 1
    log.info("%s simulated annotators gave %s answers on cycle %s", len(rates), answered, cycle.pk)
    return answered


def _simulated_users(client: lsc.LabelStudio, n: int) -> dict[str, int]:
    """The Label Studio user ids of sim-1 ... sim-n (created in the organization when missing)."""
    by_email = {u.email: int(u.id) for u in client.users.list() if u.email and u.id is not None}
    out = {}
    for k in range(1, n + 1):
        email = f"sim-{k}@{SIM_DOMAIN}"
        if email not in by_email:
            user = client.users.create(username=f"alweb-sim-{k}", email=email, first_name="sim", last_name=str(k))
            by_email[email] = int(user.id or 0)
        out[f"sim-{k}"] = by_email[email]
    return out


def _synced(cycle: Cycle) -> list[SelectedItem]:
    """The cycle's selected items that are tasks in Label Studio, in rank order."""
    return [
        si
        for si in SelectedItem.objects.filter(selection__cycle=cycle, sync_state=SyncState.SYNCED)
        .select_related("item")
        .order_by("rank")
        if si.ls_task_id or si.item.ls_task_id
    ]


def _author(annotation: dict[str, Any]) -> Any:
    user = annotation.get("completed_by")
    return user.get("id") if isinstance(user, dict) else user


def _result(
    item: Item, task_type: str, info: LabelConfigInfo, *, noise: tuple[float, int] = (0.0, 0)
) -> list[convert.ResultRegion]:
    truth = item.ground_truth
    if task_type != TaskType.OBJECT_DETECTION:
        rate, seed = noise
        answer = noisy_answer(str(truth), info.labels, rate=rate, seed=seed, key=item.key)
        return convert.choice_result(answer, from_name=info.from_name, to_name=info.to_name)
    return convert.fraction_boxes_result(
        truth or [],
        image_width=item.media_width,
        image_height=item.media_height,
        known_labels=info.labels,
        from_name=info.from_name,
        to_name=info.to_name,
    )
