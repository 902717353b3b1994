"""The arms of ``bench/learning.py``: each one line in ``ARMS``, built only from alweb's engine.

An arm names the heuristic the model is scored with (MC dropout, ``engine.scoring``) and a picker turning those
scores into a batch (``engine.heuristics.top_k`` or a strategy of ``engine.selection``). Strategies another
engineer is adding to the engine (BADGE, labeled-aware Coreset) are checked at run time: until they land the arm is
reported as skipped, never replaced by a hand-written stand-in that would not be the product's code.

The product's default is declared here, before any run, and checked against the product's own defaults
(``campaigns.models`` field defaults, ``campaigns.services.params.validate_strategy``) so the benchmark cannot
silently drift from what a new project gets.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine import heuristics, selection
from engine.learning_protocol import FloatArray, IntArray

# The default benchmarked, fixed before the final run: what a new project gets (Project.default_heuristic,
# Project.default_mc_iterations, Cycle.strategy and its validated options). Cold start is not part of it here:
# every arm starts from the same seeded random labels (the cold start would be an ablation of its own).
DECLARED_DEFAULT: dict[str, Any] = {"heuristic": "margin", "strategy": "topk", "mc_iterations": 20, "options": {}}


@dataclass(frozen=True)
class Context:
    """What a picker may look at, for the unlabeled pool (rows) and the labeled set."""

    budget: int
    seed: int
    uncertainty: FloatArray | None = None  # [n] from the arm's heuristic, higher = more informative
    probs: NDArray[np.float32] | None = None  # [n, C] mean MC probabilities
    embeddings: NDArray[np.float32] | None = None  # [n, D] penultimate features of the unlabeled items
    labeled_embeddings: NDArray[np.float32] | None = None  # [m, D] of the labeled items (Coreset)
    n: int = 0

    def u(self) -> FloatArray:
        assert self.uncertainty is not None, "this picker needs an uncertainty"
        return self.uncertainty


Picker = Callable[[Context], IntArray]


@dataclass(frozen=True)
class Arm:
    name: str
    heuristic: str | None  # None: the model is not scored (random sampling)
    pick: Picker
    embeddings: bool = False  # the picker needs the penultimate features (the engine's dropout-free pass)
    requires: Callable[[], str | None] | None = None  # why the engine cannot run this arm yet, or None
    note: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def missing(self) -> str | None:
        return self.requires() if self.requires is not None else None


def _top(ctx: Context) -> IntArray:
    return heuristics.top_k(ctx.u(), ctx.budget)


def _random(ctx: Context) -> IntArray:
    return selection.random_sample(ctx.n, ctx.budget, seed=ctx.seed)


def _power(ctx: Context) -> IntArray:
    # PowerBALD (Kirsch et al. 2022) over the WHOLE unlabeled pool: Gumbel-top-k on log BALD, power 1.
    return selection.power_sample(ctx.u(), ctx.budget, seed=ctx.seed, power=1.0)


def _coreset(ctx: Context) -> IntArray:
    # Coreset (Sener & Savarese 2018): k-center seeded with the labeled set's embeddings, over the whole pool.
    return selection.k_center_greedy(ctx.embeddings, ctx.budget, labeled=ctx.labeled_embeddings)  # type: ignore[arg-type]


def _badge(ctx: Context) -> IntArray:
    fn: Any = getattr(selection, "badge")  # noqa: B009  # looked up late: see Arm.requires
    return np.asarray(fn(ctx.probs, ctx.embeddings, ctx.budget, seed=ctx.seed), dtype=np.int64)


def _has(name: str, param: str | None = None) -> Callable[[], str | None]:
    """A requirement on engine.selection: the function exists (and takes ``param``), else why the arm is skipped."""

    def check() -> str | None:
        fn = getattr(selection, name, None)
        if fn is None:
            return f"engine.selection.{name} does not exist yet"
        if param is not None and param not in inspect.signature(fn).parameters:
            return f"engine.selection.{name} has no {param!r} parameter yet"
        return None

    return check


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("random", None, _random),
        Arm("entropy", "entropy", _top),
        Arm("margin", "margin", _top),
        Arm("bald", "bald", _top),
        Arm("powerbald", "bald", _power),
        Arm("coreset", None, _coreset, embeddings=True, requires=_has("k_center_greedy", "labeled")),
        # BADGE reads the mean MC probabilities; "entropy" only names the scoring pass, its values are unused.
        Arm("badge", "entropy", _badge, embeddings=True, requires=_has("badge")),
    )
}


def product_pick(strategy: str, options: dict[str, Any]) -> tuple[Picker, bool]:
    """The picker the product uses for ``strategy`` once a model has scored the pool
    (``campaigns.services.selection._pick``): top-k; PowerBALD and random over the whole pool; diverse as k-center
    over the top ``candidates_factor x budget`` seeded with the labeled set, the most uncertain candidate first.
    Coreset and BADGE are arms of their own (``ARMS``), the same engine functions the product calls."""
    if strategy == "topk":
        return _top, False
    if strategy == "random":
        return _random, False
    if strategy == "power":
        power = float(options["power"])
        return (lambda ctx: selection.power_sample(ctx.u(), ctx.budget, seed=ctx.seed, power=power)), False
    if strategy != "diverse":
        raise ValueError(f"no benchmark mapping for the product strategy {strategy!r}")
    factor = int(options.get("candidates_factor", 10))

    def diverse(ctx: Context) -> IntArray:
        assert ctx.embeddings is not None
        cand = heuristics.top_k(ctx.u(), ctx.budget * factor)
        order = selection.k_center_greedy(ctx.embeddings[cand], ctx.budget, labeled=ctx.labeled_embeddings, start=0)
        return cand[order]

    return diverse, True


def product_default() -> tuple[dict[str, Any], str]:
    """The product's default for a new project, read from its own code (no database needed), and where from."""
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alweb.settings.local")
        os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/alweb_bench")
        django = importlib.import_module("django")
        django.setup()
        models = importlib.import_module("campaigns.models")
        params = importlib.import_module("campaigns.services.params")
        strategy = models.Cycle._meta.get_field("strategy").default
        options = params.validate_strategy(strategy, {}, labels=[])
        options.pop("cold_start", None)  # see DECLARED_DEFAULT: the initial set is shared by every arm
        found = {
            "heuristic": str(models.Project._meta.get_field("default_heuristic").default),
            "strategy": str(strategy),
            "mc_iterations": int(models.Project._meta.get_field("default_mc_iterations").default),
            "options": options,
        }
        return found, "campaigns.models / campaigns.services.params"
    except Exception as exc:  # the benchmark still runs outside a configured checkout; it says so
        return dict(DECLARED_DEFAULT), f"declared (product not readable: {type(exc).__name__})"


def default_arm(spec: dict[str, Any]) -> Arm:
    pick, needs_emb = product_pick(spec["strategy"], spec["options"])
    label = f"{spec['heuristic']} {spec['strategy']}, T={spec['mc_iterations']}"
    return Arm("default", spec["heuristic"], pick, embeddings=needs_emb, note=label, options=spec["options"])


def same_as(spec: dict[str, Any]) -> str | None:
    """The arm in ``ARMS`` that computes exactly the default (same heuristic and picker), if any: its runs are
    then the default's runs too, instead of a second identical computation."""
    if spec["strategy"] != "topk" or spec["options"]:
        return None
    for other in ARMS.values():
        if other.heuristic == spec["heuristic"] and other.pick is _top:
            return other.name
    return None
