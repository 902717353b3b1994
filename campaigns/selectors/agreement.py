"""Agreement between annotators, per project, class and item, and each annotator's work: reads for the API, the
dashboard and the admin.

Built from the live answers (not deleted, not skipped, mapped without error) of a classification project; the math
is `engine.agreement` (Krippendorff's alpha from `krippendorff`, Fleiss' kappa from statsmodels, Cohen's kappa from
scikit-learn). The consensus an annotator is compared with is the item's resolved label (`Item.label`: the
project's consensus rule, a ground-truth answer, or a reviewer's decision). Detection answers (lists of boxes) have
no agreement measure here yet: the report says so instead of giving numbers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from campaigns.models import Annotation, Item, LabelQualityRun, Project, RunState, TaskType
from engine.agreement import (
    Answer,
    class_alphas,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    reliability_matrix,
    two_rater_kappa,
)

# The answers that count, as `services.annotations.live_answers` says; as a query here.
LIVE = Q(deleted_at__isnull=True, was_cancelled=False, error="")
UNKNOWN_ANNOTATOR = "(unknown)"
NOT_CLASSIFICATION = "agreement is measured for classification projects only (boxes have no measure here yet)"


@dataclass
class ProjectAgreement:
    applies: bool
    reason: str = ""
    annotators_per_task: int = 1
    consensus_rule: str = ""
    answers: int = 0
    annotators: int = 0
    items_annotated: int = 0
    items_with_overlap: int = 0  # items with at least two answers: the ones agreement is measured on
    items_disputed: int = 0  # of those, items where not every answer is the same
    mean_item_agreement: float | None = None
    krippendorff_alpha: float | None = None
    fleiss_kappa: float | None = None
    fleiss_items: int = 0
    fleiss_raters: int = 0
    cohen_kappa: float | None = None  # only with exactly two annotators
    cohen_items: int = 0


@dataclass
class ClassAgreement:
    label: str
    answers: int
    items: int  # items whose consensus is this class, among those with overlap
    krippendorff_alpha: float | None  # this class against all others
    mean_item_agreement: float | None


@dataclass
class ItemAgreement:
    item_id: int
    key: str
    label: Any
    agreement: float
    answers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AgreementReport:
    project: ProjectAgreement
    classes: list[ClassAgreement]
    items: list[ItemAgreement]


@dataclass
class AnnotatorStats:
    annotator: str
    answers: int
    items_with_overlap: int
    agreement_with_consensus: float | None  # share of their answers on overlapped items equal to the consensus
    kappa_with_consensus: float | None
    mean_lead_time: float | None  # seconds
    labels_per_hour: float | None  # answers with a lead time / their summed lead time in hours
    first_answer_at: datetime | None
    last_answer_at: datetime | None
    # CROWDLAB's estimate of the annotator's quality (the latest label-quality run with several answers per item).
    crowdlab_quality: float | None = None


@dataclass
class _Row:
    item: int
    annotator: str
    value: int
    lead_time: float | None
    at: datetime | None


def _rows(project: Project) -> list[_Row]:
    """The live answers with a known class, oldest first: a later answer by the same annotator on the same item
    replaces the earlier one (the reliability matrix holds one value per cell)."""
    index = {label: i for i, label in enumerate(project.labels)}
    rows = []
    query = (
        Annotation.objects.filter(LIVE, project=project)
        .order_by("ls_created_at", "ls_annotation_id")
        .values_list("item_id", "annotator", "value", "lead_time", "ls_created_at")
    )
    for item_id, annotator, value, lead_time, at in query.iterator(chunk_size=10_000):
        if isinstance(value, str) and value in index:
            rows.append(_Row(item_id, annotator or UNKNOWN_ANNOTATOR, index[value], lead_time, at))
    return rows


def _latest(rows: list[_Row]) -> dict[tuple[int, str], _Row]:
    return {(r.item, r.annotator): r for r in rows}


def agreement_for_project(*, project: Project, items_limit: int = 20) -> AgreementReport:
    """Project, per-class and (the `items_limit` least agreed) per-item agreement."""
    summary = ProjectAgreement(
        applies=project.task_type != TaskType.OBJECT_DETECTION,
        annotators_per_task=project.annotators_per_task,
        consensus_rule=project.consensus_rule,
    )
    if not summary.applies:
        summary.reason = NOT_CLASSIFICATION
        return AgreementReport(summary, [], [])
    latest = _latest(_rows(project))
    answers = [Answer(r.annotator, r.item, r.value) for r in latest.values()]
    labels = list(project.labels)
    summary.answers, summary.annotators = len(answers), len({a.annotator for a in answers})
    by_item: dict[int, list[Answer]] = defaultdict(list)
    for a in answers:
        by_item[a.item].append(a)
    summary.items_annotated = len(by_item)
    overlapped = {item: group for item, group in by_item.items() if len(group) >= 2}
    summary.items_with_overlap = len(overlapped)
    if not overlapped:
        summary.reason = "no item has answers from two annotators yet: set annotators_per_task above 1"
        return AgreementReport(summary, [_class(label, answers, c, {}, None) for c, label in enumerate(labels)], [])
    share = {
        item: Counter(a.value for a in group).most_common(1)[0][1] / len(group) for item, group in overlapped.items()
    }
    summary.items_disputed = sum(1 for s in share.values() if s < 1)
    summary.mean_item_agreement = sum(share.values()) / len(share)
    matrix, _, _ = reliability_matrix(answers)
    summary.krippendorff_alpha = krippendorff_alpha(matrix)
    raters = project.annotators_per_task if project.annotators_per_task >= 2 else None
    summary.fleiss_kappa, summary.fleiss_items, summary.fleiss_raters = fleiss_kappa(matrix, len(labels), raters=raters)
    if summary.fleiss_items == 0 and raters is not None:  # no item has exactly the overlap asked for (yet)
        summary.fleiss_kappa, summary.fleiss_items, summary.fleiss_raters = fleiss_kappa(matrix, len(labels))
    summary.cohen_kappa, summary.cohen_items = two_rater_kappa(matrix)
    consensus = dict(Item.objects.filter(pk__in=overlapped).values_list("pk", "label"))
    alphas = class_alphas(matrix, len(labels))
    classes = [
        _class(label, answers, c, {i: s for i, s in share.items() if consensus.get(i) == label}, alphas[c])
        for c, label in enumerate(labels)
    ]
    worst = sorted(share, key=lambda i: (share[i], i))[: max(0, items_limit)]
    keys = dict(Item.objects.filter(pk__in=worst).values_list("pk", "key"))
    items = [
        ItemAgreement(
            item_id=i,
            key=keys.get(i, ""),
            label=consensus.get(i),
            agreement=share[i],
            answers=[
                {"annotator": a.annotator, "value": labels[a.value]}
                for a in sorted(overlapped[i], key=lambda a: a.annotator)
            ],
        )
        for i in worst
    ]
    return AgreementReport(summary, classes, items)


def _class(label: str, answers: list[Answer], c: int, shares: dict[int, float], alpha: float | None) -> ClassAgreement:
    return ClassAgreement(
        label=label,
        answers=sum(1 for a in answers if a.value == c),
        items=len(shares),
        krippendorff_alpha=alpha,
        mean_item_agreement=sum(shares.values()) / len(shares) if shares else None,
    )


def annotators_for_project(*, project: Project) -> list[AnnotatorStats]:
    """Each annotator's work, most answers first: counts, agreement with the consensus on items others answered
    too, lead time and pace. Lead time is what Label Studio measured on the task; labels per hour divide the
    answers that have one by their summed lead time (time on task, not the span between first and last answer)."""
    if project.task_type == TaskType.OBJECT_DETECTION:
        return []
    labels = list(project.labels)
    latest = _latest(_rows(project))
    per_item = Counter(r.item for r in latest.values())
    consensus = {
        pk: labels.index(label)
        for pk, label in Item.objects.filter(pk__in=[i for i, n in per_item.items() if n >= 2]).values_list(
            "pk", "label"
        )
        if isinstance(label, str) and label in labels
    }
    by_annotator: dict[str, list[_Row]] = defaultdict(list)
    for r in latest.values():
        by_annotator[r.annotator].append(r)
    crowdlab = _crowdlab_quality(project)
    out = []
    for name, rows in by_annotator.items():
        judged = [r for r in rows if r.item in consensus]
        times = [r.lead_time for r in rows if r.lead_time is not None and r.lead_time > 0]
        moments = [r.at for r in rows if r.at is not None]
        out.append(
            AnnotatorStats(
                annotator=name,
                answers=len(rows),
                items_with_overlap=sum(1 for r in rows if per_item[r.item] >= 2),
                agreement_with_consensus=(
                    sum(1 for r in judged if r.value == consensus[r.item]) / len(judged) if judged else None
                ),
                kappa_with_consensus=cohen_kappa([r.value for r in judged], [consensus[r.item] for r in judged]),
                mean_lead_time=sum(times) / len(times) if times else None,
                labels_per_hour=len(times) / (sum(times) / 3600) if times else None,
                first_answer_at=min(moments) if moments else None,
                last_answer_at=max(moments) if moments else None,
                crowdlab_quality=crowdlab.get(name),
            )
        )
    return sorted(out, key=lambda s: (-s.answers, s.annotator))


def _crowdlab_quality(project: Project) -> dict[str, float]:
    """Per annotator, CROWDLAB's quality from the project's latest finished label-quality run (none: {})."""
    summary = (
        LabelQualityRun.objects.filter(project=project, state=RunState.DONE)
        .order_by("-id")
        .values_list("summary", flat=True)
        .first()
    )
    rows = (summary or {}).get("annotators") or []
    return {str(r["annotator"]): float(r["quality"]) for r in rows if isinstance(r, dict) and "quality" in r}
