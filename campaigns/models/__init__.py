"""The campaign domain: projects, items, annotations, cycles, scores and selections.

Models hold data and invariants only (named constraints); behaviour lives in `campaigns.services` and reads in
`campaigns.selectors`. A pool can hold millions of items, so every index below names the query it serves.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from campaigns.states import OPEN_CYCLE_STATES, CycleState


class TaskType(models.TextChoices):
    IMAGE_CLASSIFICATION = "image_classification", "Image classification"
    TEXT_CLASSIFICATION = "text_classification", "Text classification"
    OBJECT_DETECTION = "object_detection", "Object detection"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALID = "valid", "Validation"
    TEST = "test", "Test"
    POOL = "pool", "Pool"


class Heuristic(models.TextChoices):
    BALD = "bald", "BALD"
    ENTROPY = "entropy", "Predictive entropy"
    MARGIN = "margin", "Margin"
    LEAST_CONFIDENCE = "least_confidence", "Least confidence"
    VARIATION_RATIO = "variation_ratio", "Variation ratio"
    POWER_BALD = "power_bald", "PowerBALD"
    RANDOM = "random", "Random"


class Strategy(models.TextChoices):
    """How a cycle turns its scores into a selection (`engine.selection` holds the math of each)."""

    TOPK = "topk", "Most uncertain first (top-k)"
    POWER = "power", "Sampled in proportion to uncertainty^power over the whole pool (PowerBALD)"
    DIVERSE = "diverse", "Most uncertain candidates thinned by k-center"
    CORESET = "coreset", "Core-set: k-center from the labeled set (Sener & Savarese)"
    BADGE = "badge", "BADGE: k-means++ on gradient embeddings (Ash et al.)"
    QUOTA = "quota", "Per predicted class quotas"
    RANDOM = "random", "Random (baseline)"


class ColdStart(models.TextChoices):
    """How a cycle without a model picks: a seeded random sample, or one item per k-means cluster of the pool (the
    nearest its centre, or the most typical: TypiClust)."""

    RANDOM = "random", "Seeded random sample"
    KMEANS = "kmeans", "One item per k-means cluster"
    TYPICLUST = "typiclust", "The most typical item of each k-means cluster (TypiClust)"


class ConsensusRule(models.TextChoices):
    """How several annotators' answers on one item become its training label (`services.annotations.resolve`). An
    answer flagged ground truth in Label Studio wins under either rule, as it does in Label Studio itself."""

    MAJORITY = "majority", "The most frequent answer, from the first answer on (ties: the earliest)"
    QUORUM = "quorum", "Only once more than half of the annotators per task agree"


MAX_ANNOTATORS_PER_TASK = 20


def _default_split_ratios() -> dict[str, float]:
    return dict(settings.ALWEB_DEFAULT_SPLIT_RATIOS)


class Project(models.Model):
    name = models.CharField(max_length=200)
    task_type = models.CharField(max_length=32, choices=TaskType.choices)
    labels = models.JSONField(help_text="Ordered list of label names.")
    split_ratios = models.JSONField(default=_default_split_ratios)
    # Model configuration for the engine, e.g. {"image_size": 32, "channels": 1} or {"encoder": "minilm"}.
    model_config = models.JSONField(default=dict, blank=True)
    # The default: margin top-k on MC-dropout mean probabilities, chosen on bench/learning.py's development seeds
    # (0-4) over all four datasets together, before the final run on fresh seeds (docs/learning.md).
    default_heuristic = models.CharField(max_length=32, choices=Heuristic.choices, default=Heuristic.MARGIN)
    default_mc_iterations = models.PositiveSmallIntegerField(default=20)
    default_budget = models.PositiveIntegerField(default=100)
    # How many validation and test items people should label, as an i.i.d. seeded sample no model chooses; NULL:
    # the default for the project's size (campaigns.services.evaluation.evaluation_targets), 0: none.
    eval_valid_target = models.PositiveIntegerField(null=True, blank=True)
    eval_test_target = models.PositiveIntegerField(null=True, blank=True)
    # When a cycle closes, train once more on every label so far: the learning curve ends at the labels spent.
    train_on_close = models.BooleanField(default=True)
    # Overlap: how many annotators label each task (Label Studio's maximum_annotations, pushed to the LS project),
    # and the rule that turns their answers into the label training uses.
    annotators_per_task = models.PositiveSmallIntegerField(default=1)
    consensus_rule = models.CharField(max_length=16, choices=ConsensusRule.choices, default=ConsensusRule.MAJORITY)
    # Label Studio connection. The key is stored server-side only and never serialized.
    ls_url = models.URLField(blank=True, default="")
    ls_api_key = models.CharField(max_length=2048, blank=True, default="")
    ls_project_id = models.PositiveIntegerField(null=True, blank=True)
    # Set once alweb has checked the LS project's labeling config against this project and registered its webhook;
    # cleared when the connection changes, so a project id typed in by hand is checked before anything is sent.
    ls_linked = models.BooleanField(default=False)
    ls_webhook_secret = models.CharField(max_length=64, blank=True, default="")
    ls_pulled_until = models.DateTimeField(null=True, blank=True, help_text="High-water mark of the last pull.")
    # Signed into every stable media link of the project's items (campaigns.services.media): raising it revokes
    # every link handed out so far; the next sync sends new ones.
    media_links_epoch = models.PositiveIntegerField(default=0)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects", blank=True
    )
    # A simulation's sandbox: a copy of `sandbox_of` whose labels became the answer key, never a team's project
    # (every list, selector and API leaves it out). `sandbox_run` is the run that made it, if a run did (the
    # `simulate` command makes them without one); NULL on a run's delete, so cleanup still finds it.
    sandbox_of = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="sandboxes", editable=False
    )
    sandbox_run = models.ForeignKey(
        "campaigns.SimulationRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sandboxes",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="%(app_label)s_%(class)s_unique_name_per_owner"),
            models.CheckConstraint(
                condition=Q(task_type__in=TaskType.values), name="%(app_label)s_%(class)s_task_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(default_mc_iterations__gte=1), name="%(app_label)s_%(class)s_mc_iterations_positive"
            ),
            models.CheckConstraint(condition=Q(default_budget__gte=1), name="%(app_label)s_%(class)s_budget_positive"),
            models.CheckConstraint(
                condition=Q(annotators_per_task__gte=1) & Q(annotators_per_task__lte=MAX_ANNOTATORS_PER_TASK),
                name="%(app_label)s_%(class)s_annotators_per_task_range",
            ),
            models.CheckConstraint(
                condition=Q(consensus_rule__in=ConsensusRule.values),
                name="%(app_label)s_%(class)s_consensus_rule_valid",
            ),
            # One alweb project per Label Studio project on a given server.
            models.UniqueConstraint(
                fields=["ls_url", "ls_project_id"],
                condition=Q(ls_project_id__isnull=False),
                name="%(app_label)s_%(class)s_unique_ls_project",
            ),
            # A run's sandbox is a sandbox: lists that leave out `sandbox_of` rows leave out every run's copies.
            models.CheckConstraint(
                condition=Q(sandbox_run__isnull=True) | Q(sandbox_of__isnull=False),
                name="%(app_label)s_%(class)s_run_sandbox_has_source",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="%(app_label)s_%(class)s_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class ItemState(models.TextChoices):
    ACTIVE = "active", "Active"
    INVALID = "invalid", "Invalid"
    SKIPPED = "skipped", "Skipped"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=512)
    split = models.CharField(max_length=8, choices=Split.choices)
    state = models.CharField(max_length=8, choices=ItemState.choices, default=ItemState.ACTIVE)
    # Payload: exactly one of text, media (a file in storage) or url.
    text = models.TextField(blank=True, default="")
    media = models.FileField(upload_to="items/", max_length=512, blank=True, default="")
    url = models.URLField(max_length=2048, blank=True, default="")
    media_width = models.PositiveIntegerField(null=True, blank=True)
    media_height = models.PositiveIntegerField(null=True, blank=True)
    # The resolved label (a class name, or a list of boxes for detection); NULL while unlabeled.
    label = models.JSONField(null=True, blank=True)
    label_source = models.CharField(max_length=16, blank=True, default="", help_text="import or annotation")
    # Hidden answer used by evaluation and simulation only; never shown to annotators.
    ground_truth = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=512, blank=True, default="", help_text="e.g. the image a tile was cut from")
    # Label Studio task id: one LS task per item, whatever the cycle that synced it.
    ls_task_id = models.PositiveBigIntegerField(null=True, blank=True)
    label_error = models.TextField(blank=True, default="", help_text="Last annotation that could not be applied.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="%(app_label)s_%(class)s_unique_key"),
            models.CheckConstraint(condition=Q(split__in=Split.values), name="%(app_label)s_%(class)s_split_valid"),
            models.CheckConstraint(condition=Q(state__in=ItemState.values), name="%(app_label)s_%(class)s_state_valid"),
            models.UniqueConstraint(
                fields=["project", "ls_task_id"],
                condition=Q(ls_task_id__isnull=False),
                name="%(app_label)s_%(class)s_unique_ls_task",
            ),
        ]
        indexes = [
            # Counts by split and the training set: WHERE project_id=? AND split=? [AND label IS NOT NULL].
            models.Index(fields=["project", "split"], name="item_project_split"),
            # The unlabeled pool a cycle scores: WHERE project_id=? AND split='pool' AND label IS NULL.
            models.Index(
                fields=["project", "id"],
                condition=Q(split="pool", label__isnull=True, state="active"),
                name="item_unlabeled_pool",
            ),
            # Export pages, keyset-paginated: WHERE project_id=? AND id > ? ORDER BY id LIMIT n. Without it the
            # planner may scan the whole project and sort it for every page (quadratic on a fresh million-item
            # import whose statistics are not yet gathered).
            models.Index(fields=["project", "id"], name="item_project_id"),
            # The labeled items of a project, without reading the unlabeled pool (a million rows beside a few
            # thousand labels): the label balance (WHERE project_id=? AND label IS NOT NULL GROUP BY label) and the
            # training set's reads.
            models.Index(fields=["project"], condition=Q(label__isnull=False), name="item_labeled"),
        ]

    def __str__(self) -> str:
        return self.key


class ItemEmbedding(models.Model):
    """An item's embedding from a frozen encoder (e.g. MiniLM for text): computed once, reused by every cycle."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="embeddings")
    encoder = models.CharField(max_length=64)
    vector = models.BinaryField(help_text="float32 array bytes")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "encoder"], name="%(app_label)s_%(class)s_unique_encoder"),
        ]

    def __str__(self) -> str:
        return f"{self.encoder} embedding of {self.item_id}"


class Annotation(models.Model):
    """One annotator's answer in Label Studio for one item's task; all are kept, the item holds the resolved one."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    ls_annotation_id = models.PositiveBigIntegerField()
    ls_task_id = models.PositiveBigIntegerField()
    annotator = models.CharField(max_length=254, blank=True, default="")
    result = models.JSONField(default=list, help_text="Label Studio result JSON as received.")
    value = models.JSONField(null=True, blank=True, help_text="The label or boxes the result maps to.")
    lead_time = models.FloatField(null=True, blank=True, help_text="Seconds the annotator spent.")
    was_cancelled = models.BooleanField(default=False, help_text="Skipped by the annotator.")
    ground_truth = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    ls_created_at = models.DateTimeField(null=True, blank=True)
    ls_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "ls_annotation_id"], name="%(app_label)s_%(class)s_unique_ls_annotation"
            ),
        ]
        indexes = [
            # Resolving an item's label from its live annotations: WHERE item_id=? AND deleted_at IS NULL.
            models.Index(fields=["item"], condition=Q(deleted_at__isnull=True), name="annotation_live_by_item"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.ls_annotation_id} on {self.item_id}"


class Cycle(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cycles")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=CycleState.choices, default=CycleState.CREATED)
    model_version = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="cycles"
    )
    heuristic = models.CharField(max_length=32, choices=Heuristic.choices, default=Heuristic.MARGIN)
    heuristic_params = models.JSONField(default=dict, blank=True)
    strategy = models.CharField(max_length=32, choices=Strategy.choices, default=Strategy.TOPK)
    strategy_params = models.JSONField(default=dict, blank=True)
    mc_iterations = models.PositiveSmallIntegerField(default=20)
    budget = models.PositiveIntegerField(default=100)
    threshold = models.FloatField(null=True, blank=True, help_text="Minimum uncertainty of a selected item.")
    # The threshold as a share of the scored pool (0.2: the 20% most uncertain), resolved to an uncertainty once the
    # cycle's scores exist: raw uncertainty scales differ by heuristic, class count and model.
    threshold_quantile = models.FloatField(null=True, blank=True)
    seed = models.BigIntegerField(default=0)
    # When true the cycle selects and syncs on its own after scoring; otherwise it waits in "scored" for a person.
    auto_advance = models.BooleanField(default=True)
    # {"stage": ..., "done": n, "total": n, "started_at": iso, "updated_at": iso}; read by the dashboard and API.
    progress = models.JSONField(default=dict, blank=True)
    # Summary of the score distribution written when scoring ends (fine histogram for the preview).
    score_stats = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="%(app_label)s_%(class)s_unique_number"),
            # At most one open cycle per project, whatever the number of concurrent starts.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state__in=OPEN_CYCLE_STATES),
                name="%(app_label)s_%(class)s_one_open_per_project",
            ),
            models.CheckConstraint(
                condition=Q(state__in=CycleState.values), name="%(app_label)s_%(class)s_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(strategy__in=Strategy.values), name="%(app_label)s_%(class)s_strategy_valid"
            ),
            models.CheckConstraint(condition=Q(budget__gte=1), name="%(app_label)s_%(class)s_budget_positive"),
            models.CheckConstraint(
                condition=Q(mc_iterations__gte=1), name="%(app_label)s_%(class)s_mc_iterations_positive"
            ),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold__gte=0),
                name="%(app_label)s_%(class)s_threshold_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(threshold_quantile__isnull=True)
                | (Q(threshold_quantile__gt=0) & Q(threshold_quantile__lte=1)),
                name="%(app_label)s_%(class)s_threshold_quantile_share",
            ),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold_quantile__isnull=True),
                name="%(app_label)s_%(class)s_one_threshold_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} cycle {self.number}"


class Score(models.Model):
    """One item's uncertainty in one cycle (higher = more informative), with the heuristic that produced it."""

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="scores")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="scores")
    uncertainty = models.FloatField()
    # A Heuristic name, or "detection:<method>" for an external detector's per-image score.
    heuristic = models.CharField(max_length=40)
    predicted_label = models.CharField(max_length=200, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    # Detection only: the boxes the model predicted, [{label, x, y, w, h, score}] with x, y, w, h fractions of the
    # image (top-left corner; the shape of a detection label), so annotators get them as pre-annotations.
    boxes = models.JSONField(null=True, blank=True)
    # Which scoring chunk wrote this row: a redelivered scoring task skips chunks already present.
    chunk = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cycle", "item"], name="%(app_label)s_%(class)s_unique_item"),
        ]
        indexes = [
            # Top by uncertainty within a cycle, and threshold counts: WHERE cycle_id=? AND uncertainty >= ?
            # ORDER BY uncertainty DESC LIMIT budget.
            models.Index(fields=["cycle", "-uncertainty"], name="score_cycle_uncertainty"),
            # Resume: SELECT DISTINCT chunk WHERE cycle_id=?.
            models.Index(fields=["cycle", "chunk"], name="score_cycle_chunk"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}@{self.cycle_id}: {self.uncertainty:.4f}"


class Selection(models.Model):
    """What a cycle decided to send to annotators, with the parameters and model that decided it. Immutable."""

    cycle = models.OneToOneField(Cycle, on_delete=models.CASCADE, related_name="selection")
    model_version = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    strategy = models.CharField(max_length=32)
    params = models.JSONField(default=dict, help_text="budget, threshold, seed, heuristic and strategy options")
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"selection of {self.cycle}"


class SyncState(models.TextChoices):
    PENDING = "pending", "Pending"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"


class Purpose(models.TextChoices):
    """Why a selected item goes to annotators: the model asked for it, or it belongs to the evaluation sample."""

    TRAINING = "training", "Training (chosen by the strategy)"
    EVALUATION = "evaluation", "Evaluation (i.i.d. sample of validation/test)"


class SelectedItem(models.Model):
    selection = models.ForeignKey(Selection, on_delete=models.CASCADE, related_name="items")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="selections")
    rank = models.PositiveIntegerField()
    uncertainty = models.FloatField(null=True, blank=True)
    predicted_label = models.CharField(max_length=200, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    boxes = models.JSONField(null=True, blank=True)  # the Score's predicted boxes (detection), synced to LS
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.TRAINING)
    # Sync state is the only mutable part: rank and score are what the selection decided.
    sync_state = models.CharField(max_length=8, choices=SyncState.choices, default=SyncState.PENDING)
    # Written (and committed) before the item's first push to Label Studio and carried in the task data: a retried
    # sync that finds it set knows LS may already hold the task or prediction and looks it up instead of pushing twice.
    sync_batch = models.CharField(max_length=32, blank=True, default="")
    ls_task_id = models.PositiveBigIntegerField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["selection", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["selection", "item"], name="%(app_label)s_%(class)s_unique_item"),
            models.UniqueConstraint(fields=["selection", "rank"], name="%(app_label)s_%(class)s_unique_rank"),
            models.CheckConstraint(
                condition=Q(sync_state__in=SyncState.values), name="%(app_label)s_%(class)s_sync_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(purpose__in=Purpose.values), name="%(app_label)s_%(class)s_purpose_valid"
            ),
        ]
        indexes = [
            # The sync batch: WHERE selection_id=? AND sync_state='pending' ORDER BY rank.
            models.Index(fields=["selection", "sync_state", "rank"], name="selecteditem_sync_queue"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.item_id}"


class TrainingSetItem(models.Model):
    """One item, and the label it had, in the set a model version was trained on: written with the version, in the
    same transaction, and never changed. Labels change later (re-annotation, review) and items leave the pool
    (marked invalid), so the training set cannot be reconstructed exactly from the items' current state: it is
    recorded. `position` is the item's rank in the sort by key that the version's `training_set_hash` runs over,
    so a snapshot export reads the set in that order page by page (keyset on the unique index) and recomputes the
    hash while streaming, whatever the database's collation."""

    model_version = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.CASCADE, related_name="training_set"
    )
    position = models.PositiveIntegerField()
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    label = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "position"], name="%(app_label)s_%(class)s_unique_position"
            ),
            models.UniqueConstraint(fields=["model_version", "item"], name="%(app_label)s_%(class)s_unique_item"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.item_id} of {self.model_version_id}"


# Models of a topic of their own live in modules beside this one; imported last, so they can import from here.
from campaigns.models.exports import Export as Export  # noqa: E402
from campaigns.models.exports import ExportFormat as ExportFormat  # noqa: E402
from campaigns.models.exports import ExportState as ExportState  # noqa: E402
from campaigns.models.item_counts import ItemCount as ItemCount  # noqa: E402
from campaigns.models.label_review import LabelChange as LabelChange  # noqa: E402
from campaigns.models.label_review import LabelQualityRun as LabelQualityRun  # noqa: E402
from campaigns.models.label_review import LabelReview as LabelReview  # noqa: E402
from campaigns.models.label_review import LabelSource as LabelSource  # noqa: E402
from campaigns.models.label_review import LabelSuspect as LabelSuspect  # noqa: E402
from campaigns.models.label_review import ReviewState as ReviewState  # noqa: E402
from campaigns.models.label_review import ReviewSync as ReviewSync  # noqa: E402
from campaigns.models.label_review import RunState as RunState  # noqa: E402
from campaigns.models.pretraining import ACTIVE_PRETRAINING_STATES as ACTIVE_PRETRAINING_STATES  # noqa: E402
from campaigns.models.pretraining import BackbonePretraining as BackbonePretraining  # noqa: E402
from campaigns.models.scoring import LABELED_CHUNK as LABELED_CHUNK  # noqa: E402
from campaigns.models.scoring import ScoringChunk as ScoringChunk  # noqa: E402
from campaigns.models.scoring import ScoringPlan as ScoringPlan  # noqa: E402
from campaigns.models.simulations import ACTIVE_SIMULATION_STATES as ACTIVE_SIMULATION_STATES  # noqa: E402
from campaigns.models.simulations import SimulationRun as SimulationRun  # noqa: E402
from campaigns.models.simulations import SimulationState as SimulationState  # noqa: E402
