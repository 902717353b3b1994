"""MLflow adapter: experiments, training runs, registered versions, the ``champion`` alias, loading.

Django-free: the tracking URI is always passed in (embedded default ``sqlite:///var/mlflow.db``, production an
MLflow server); nothing relies on MLflow's default URI, which silently switches to a ``./mlruns`` file store when one
exists. One experiment and one registered model per project; names are chosen by the caller.

Aliases only: stages and ``get_latest_versions`` are deprecated in MLflow 3. ``champion`` is the version a project
scores with; it moves under a policy ("always", "if_better" on a validation metric, "never").

MLflow's fluent API (``start_run``, ``log_model``) reads a process-global tracking URI, so each public method sets
ours for its duration and restores the previous one (workers are processes, one registry at a time).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models_registry.policies import CHAMPION_POLICIES

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

ChampionPolicy = Literal["always", "if_better", "never"]
ModelKind = Literal["torch-classifier", "torch-backbone", "pyfunc-classifier", "pyfunc-detector"]
CHAMPION = "champion"
KIND_TAG = "alweb.kind"
METRIC_TAG = "alweb.metric."  # + metric name: the value the champion comparison uses, on every version
_PARAM_MAX = 6000  # MLflow's limit for one param value; longer ones go to an artifact


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    run_id: str | None
    model_uri: str  # models:/<name>/<version>
    source: str  # the logged model / artifact URI behind the version
    kind: str
    champion: bool

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.name}@{CHAMPION}"


class ModelRegistry:
    def __init__(
        self, tracking_uri: str, *, artifact_root: str | Path | None = None, registry_uri: str | None = None
    ) -> None:
        """``artifact_root``: where new experiments store artifacts (a folder or an URI such as s3://bucket/x).

        Without it, a sqlite tracking store puts artifacts in ``./mlruns`` relative to the current directory, which
        is rarely what a worker wants.
        """
        if not tracking_uri:
            raise ValueError("tracking_uri is required (MLflow's implicit default depends on the working directory)")
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Point MLflow's fluent API (start_run, log_model, ...) at this registry for the block, then restore."""
        previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])

    # -- experiments and runs -------------------------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """Experiment id for ``name``, created on first use (idempotent: workers may race on the first cycle)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.artifact_root is not None:
            root = str(self.artifact_root)
            slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            location = f"{root.rstrip('/')}/{slug}" if "://" in root else Path(root, slug).resolve().as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:
            found = self.client.get_experiment_by_name(name)  # created concurrently by another worker
            if found is None:
                raise
            return str(found.experiment_id)

    def log_training_run(
        self,
        *,
        experiment: str,
        registered_name: str,
        model: Any,
        input_example: np.ndarray,
        params: Mapping[str, Any],
        history: Sequence[Mapping[str, float]] = (),
        metrics: Mapping[str, float] | None = None,
        champion_metric: str = "best_val_macro_f1",
        greater_is_better: bool = True,
        policy: ChampionPolicy = "if_better",
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
        kind: ModelKind = "torch-classifier",
    ) -> RegisteredVersion:
        """One run: params, per-epoch metrics (step = epoch), final metrics, the model, a new registered version.

        ``history``: one mapping per epoch (``EpochLog.metrics()``); its ``epoch`` key, if any, is the step.
        The model is logged with the pickle format on purpose: MLflow 3.17 defaults to ``pt2`` (torch.export), whose
        traced eval-mode graph drops dropout, and MC dropout needs the real modules back.
        """
        import torch
        from mlflow.models import infer_signature

        metrics = dict(metrics or {})
        experiment_id = self.ensure_experiment(experiment)
        with self.active(), mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {})):
            run = mlflow.active_run()
            assert run is not None
            self._log_params(params)
            # One batched call: hundreds of short epochs (few labels) would be hundreds of round trips otherwise.
            now = int(time.time() * 1000)
            per_epoch = [
                Metric(key=k, value=float(v), timestamp=now, step=int(epoch.get("epoch", i + 1)))
                for i, epoch in enumerate(history)
                for k, v in epoch.items()
                if k != "epoch"
            ]
            for start in range(0, len(per_epoch), 1000):  # MLflow's log_batch limit
                self.client.log_batch(run.info.run_id, metrics=per_epoch[start : start + 1000])
            if metrics:
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            model.eval()
            with torch.no_grad():
                example_out = model(torch.as_tensor(input_example)).numpy()
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                registered_model_name=registered_name,
                signature=infer_signature(input_example, example_out),
                serialization_format="pickle",
                # explicit requirements: inferring them spawns a subprocess that reloads the model (slow, noisy)
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
            )
            run_id = run.info.run_id
        version = int(info.registered_model_version or self._version_of_run(registered_name, run_id))
        self.client.set_model_version_tag(registered_name, str(version), KIND_TAG, kind)
        value = metrics.get(champion_metric)
        if value is not None:
            self.client.set_model_version_tag(registered_name, str(version), METRIC_TAG + champion_metric, str(value))
        is_champion = self.promote(
            registered_name,
            version,
            metric=champion_metric,
            value=value,
            policy=policy,
            greater_is_better=greater_is_better,
        )
        return RegisteredVersion(
            name=registered_name,
            version=version,
            run_id=run_id,
            model_uri=f"models:/{registered_name}/{version}",
            source=info.model_uri,
            kind=kind,
            champion=is_champion,
        )

    def _log_params(self, params: Mapping[str, Any]) -> None:
        flat: dict[str, str] = {}
        for key, value in params.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if len(text) > _PARAM_MAX:  # e.g. thousands of label names: keep them whole as an artifact
                mlflow.log_text(text, f"params/{key}.json")
                text = f"<{len(text)} chars: see artifact params/{key}.json>"
            flat[key] = text
        mlflow.log_params(flat)

    def _version_of_run(self, name: str, run_id: str) -> int:
        found = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        if not found:
            raise LookupError(f"no version of {name!r} for run {run_id}")
        return max(int(v.version) for v in found)

    # -- champion alias -------------------------------------------------------------------------------------------

    def champion(self, name: str) -> RegisteredVersion | None:
        try:
            mv = self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None
        return self._describe(mv, champion=True)

    def _describe(self, mv: Any, *, champion: bool) -> RegisteredVersion:
        return RegisteredVersion(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or None,
            model_uri=f"models:/{mv.name}/{mv.version}",
            source=mv.source,
            kind=(mv.tags or {}).get(KIND_TAG, ""),
            champion=champion,
        )

    def _metric_of(self, mv: Any, metric: str) -> float | None:
        tagged = (mv.tags or {}).get(METRIC_TAG + metric)
        if tagged is not None:
            return float(tagged)
        if mv.run_id:
            value = self.client.get_run(mv.run_id).data.metrics.get(metric)
            return None if value is None else float(value)
        return None

    def promote(
        self,
        name: str,
        version: int,
        *,
        metric: str,
        value: float | None,
        policy: ChampionPolicy = "if_better",
        greater_is_better: bool = True,
    ) -> bool:
        """Move ``champion`` to ``version`` if the policy says so; return whether it is the champion now.

        "if_better": strictly better than the current champion's value of ``metric`` (a tie keeps the incumbent, so
        the alias doesn't flap between equal models). With no champion yet the new version wins (a project must be
        able to score); a champion without that metric loses; a new version without a finite value never wins.
        """
        if policy not in CHAMPION_POLICIES:
            raise ValueError(f"unknown champion policy {policy!r}")
        try:
            current = self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            current = None
        if current is not None and int(current.version) == version:
            return True
        win = policy == "always" or (policy == "if_better" and current is None)
        if policy == "if_better" and current is not None and value is not None and math.isfinite(value):
            old = self._metric_of(current, metric)
            win = old is None or (value > old if greater_is_better else value < old)
        if win:
            self.client.set_registered_model_alias(name, CHAMPION, str(version))
        return win

    # -- external models and loading ------------------------------------------------------------------------------

    def register_external(
        self,
        *,
        registered_name: str,
        model_uri: str,
        kind: ModelKind,
        metrics: Mapping[str, float] | None = None,
        champion_metric: str | None = None,
        greater_is_better: bool = True,
        policy: ChampionPolicy = "always",
    ) -> RegisteredVersion:
        """Register an existing MLflow model (``runs:/``, ``models:/<id>``, a saved-model path) as a new version.

        Default policy "always": a user registering an external model means "score with this one".
        """
        tags: dict[str, str] = {KIND_TAG: kind}
        for key, val in (metrics or {}).items():
            tags[METRIC_TAG + key] = str(val)
        with self.active():
            mv = mlflow.register_model(model_uri, registered_name, tags=tags)
        version = int(mv.version)
        value = (metrics or {}).get(champion_metric) if champion_metric else None
        is_champion = self.promote(
            registered_name,
            version,
            metric=champion_metric or "",
            value=value,
            policy=policy,
            greater_is_better=greater_is_better,
        )
        return RegisteredVersion(
            name=registered_name,
            version=version,
            run_id=mv.run_id or None,
            model_uri=f"models:/{registered_name}/{version}",
            source=mv.source or model_uri,
            kind=kind,
            champion=is_champion,
        )

    def discard(self, *, registered_name: str, experiment: str) -> bool:
        """Delete a registered model with all its versions, and the experiment holding its runs (MLflow keeps a
        deleted experiment's runs and artifacts until ``mlflow gc``). For throwaway projects (simulation sandboxes),
        never a team's. Idempotent; True when there was something to delete."""
        found = False
        try:
            self.client.delete_registered_model(registered_name)
            found = True
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        existing = self.client.get_experiment_by_name(experiment)
        if existing is not None and existing.lifecycle_stage == "active":
            self.client.delete_experiment(existing.experiment_id)
            found = True
        return found

    def discard_version(self, *, registered_name: str, version: int | str) -> None:
        """Delete one version of a registered model (one nothing refers to: a run cancelled while registering it)."""
        self.client.delete_model_version(registered_name, str(version))

    def load_torch(self, uri: str) -> Any:
        """An ``nn.Module`` from ``models:/<name>@champion``, ``models:/<name>/<version>`` or a run URI."""
        import mlflow.pytorch

        with self.active():
            return mlflow.pytorch.load_model(uri, map_location="cpu")

    def load_pyfunc(self, uri: str) -> Any:
        with self.active():
            return mlflow.pyfunc.load_model(uri)

    def download_model(self, uri: str, dst: str | Path) -> Path:
        """The files behind a model URI (``models:/<name>/<version>``: MLmodel, weights, requirements) copied into
        ``dst``; returns the folder holding them."""
        with self.active():
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))

    def load_champion(self, name: str) -> Any:
        return self.load_torch(f"models:/{name}@{CHAMPION}")
