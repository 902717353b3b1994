"""Reads, split by entity and named entity_action like the services. Import from here:
`from campaigns import selectors` then `selectors.items_pool(...)`."""

from __future__ import annotations

from campaigns.selectors.agreement import (
    agreement_for_project,
    annotators_for_project,
)
from campaigns.selectors.curves import (
    CURVE_MIN_TEST_LABELS,
    curve_stopping_suggestion,
    model_versions_for_project,
    project_learning_curve,
)
from campaigns.selectors.cycles import (
    cycle_for_member,
    cycles_for_project,
    selected_items_first,
    selected_items_for,
    selected_items_label_balance,
    selected_items_labeled_count,
    selected_items_of_cycle,
)
from campaigns.selectors.evaluation import (
    EvaluationStatus,
    evaluation_status,
)
from campaigns.selectors.exports import (
    ExportRow,
    export_count,
    export_of_project,
    export_pages,
    exports_for_project,
    snapshot_count,
    snapshot_is_recorded,
    snapshot_model_version,
    snapshot_pages,
)
from campaigns.selectors.item_counts import items_count_matching
from campaigns.selectors.items import (
    annotations_for_project,
    items_count_by_split,
    items_count_by_state,
    items_evaluation,
    items_for_project,
    items_keys,
    items_label_balance,
    items_labeled,
    items_pool,
    items_selected_elsewhere,
)
from campaigns.selectors.links import (
    ls_base_url,
    ls_project_link,
    ls_task_link,
    mlflow_base_url,
    mlflow_link,
)
from campaigns.selectors.projects import (
    memberships_for_project,
    project_for_member,
    projects_for_user,
    projects_with_counts_for_user,
)
from campaigns.selectors.scores import (
    cycle_has_scores,
    scores_candidate_arrays,
    scores_candidates,
    scores_count_at_least,
    scores_for_cycle,
    scores_histogram,
    scores_sorted,
    scores_sorted_ids_name,
    scores_sorted_name,
    scores_stats_compute,
    scores_top_candidates,
)
from campaigns.selectors.simulations import simulation_of_project, simulations_for_project

__all__ = [
    "CURVE_MIN_TEST_LABELS",
    "EvaluationStatus",
    "ExportRow",
    "agreement_for_project",
    "annotations_for_project",
    "annotators_for_project",
    "curve_stopping_suggestion",
    "cycle_for_member",
    "cycle_has_scores",
    "cycles_for_project",
    "evaluation_status",
    "export_count",
    "export_of_project",
    "export_pages",
    "exports_for_project",
    "items_count_by_split",
    "items_count_by_state",
    "items_count_matching",
    "items_evaluation",
    "items_for_project",
    "items_keys",
    "items_label_balance",
    "items_labeled",
    "items_pool",
    "items_selected_elsewhere",
    "ls_base_url",
    "ls_project_link",
    "ls_task_link",
    "memberships_for_project",
    "mlflow_base_url",
    "mlflow_link",
    "model_versions_for_project",
    "project_for_member",
    "project_learning_curve",
    "projects_for_user",
    "projects_with_counts_for_user",
    "scores_candidate_arrays",
    "scores_candidates",
    "scores_count_at_least",
    "scores_for_cycle",
    "scores_histogram",
    "scores_sorted",
    "scores_sorted_ids_name",
    "scores_sorted_name",
    "scores_stats_compute",
    "scores_top_candidates",
    "selected_items_first",
    "selected_items_for",
    "selected_items_label_balance",
    "selected_items_labeled_count",
    "selected_items_of_cycle",
    "simulation_of_project",
    "simulations_for_project",
    "snapshot_count",
    "snapshot_is_recorded",
    "snapshot_model_version",
    "snapshot_pages",
]
