"""Simulation runs: a comparison of strategies against random sampling on a project's own labels, run by a Celery
task on sandbox copies of the project (issue 14). The sandboxes themselves are Projects marked `sandbox_of`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from campaigns.models import Heuristic, Project


class SimulationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


# A run that still holds (or will hold) sandboxes and a worker: one per project at a time.
ACTIVE_SIMULATION_STATES = (SimulationState.QUEUED.value, SimulationState.RUNNING.value)


class SimulationRun(models.Model):
    """Strategies compared with random, `seeds` paired seeds of `cycles` cycles of `budget` labels each; the
    report is `ComparisonReport.as_json()` once done."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="simulations")
    # The strategies compared with random (random itself is always an arm).
    strategies = models.JSONField(default=list)
    seeds = models.PositiveSmallIntegerField(default=3)
    cycles = models.PositiveSmallIntegerField(default=4)
    budget = models.PositiveIntegerField(default=20)
    heuristic = models.CharField(max_length=32, choices=Heuristic.choices, default=Heuristic.MARGIN)
    # The simulated annotators' error rates: one annotator with `noise_rate`, or several (`annotators`, each a rate)
    # answering each task as the project's overlap asks (integrations.labelstudio.oracle).
    noise_rate = models.FloatField(default=0.0)
    annotators = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=8, choices=SimulationState.choices, default=SimulationState.QUEUED)
    # Bumped by every claim (queued→running, or a takeover of a running run whose worker died): a worker writes
    # progress and the result only while the run's attempt is still its own, so a superseded one stops.
    attempt = models.PositiveIntegerField(default=0)
    # {"done": arms finished, "total": arms, "updated_at": iso}
    progress = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=SimulationState.values), name="%(app_label)s_%(class)s_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(heuristic__in=Heuristic.values), name="%(app_label)s_%(class)s_heuristic_valid"
            ),
            # Two paired seeds at least: one seed has no interval.
            models.CheckConstraint(condition=Q(seeds__gte=2), name="%(app_label)s_%(class)s_seeds_at_least_2"),
            models.CheckConstraint(condition=Q(cycles__gte=1), name="%(app_label)s_%(class)s_cycles_positive"),
            models.CheckConstraint(condition=Q(budget__gte=1), name="%(app_label)s_%(class)s_budget_positive"),
            models.CheckConstraint(
                condition=Q(noise_rate__gte=0) & Q(noise_rate__lt=1), name="%(app_label)s_%(class)s_noise_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=F("created_at")),
                name="%(app_label)s_%(class)s_finished_after_created",
            ),
            # One queued or running run per project (the request's 409; also what lets a redelivered run delete
            # the project's orphan sandboxes of its own without touching another run's).
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state__in=ACTIVE_SIMULATION_STATES),
                name="%(app_label)s_%(class)s_one_active_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"simulation {self.pk} of {self.project}"
