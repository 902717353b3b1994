"""MC-dropout scoring engine: per-sample probabilities -> heuristics -> per-item results, chunk by chunk.

Fast path (batch replication): most networks put dropout only near the output. The model is split at the first
stochastic layer; the deterministic prefix runs ONCE per batch, its output is repeated T times along the batch axis
(t-major, the layout baal's ``stack_in_memory`` uses) and only the suffix runs on the replicated batch. With the same
dropout masks this computes exactly what running the whole model T times computes (tested), at a fraction of the
cost. Models that cannot be split (custom forward, dropout in the first layer) use the plain path: the whole model T
times. The split is verified on the first batch and falls back to plain if it does not reproduce the model.

Memory: the pool arrives as an iterable of batches and results leave as one ``ScoreChunk`` per batch, so memory is
bounded by one batch (times T in the suffix, further capped by ``max_rows``), whatever the pool size. Chunks carry
their index so an interrupted scoring can resume by skipping the chunks already written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from engine.device import autocast, resolve_device, rng_devices, rng_state, set_rng_state
from engine.heuristics import NEEDS_SAMPLES, STOCHASTIC, get_heuristic

OutputKind = Literal["logits", "probs", "log_probs"]
Mode = Literal["auto", "fast", "plain"]
ProgressCallback = Callable[[int, int | None], None]
# A sampler maps one batch of model input to (probabilities [n, C, T], optional embeddings [n, D]).
Sampler = Callable[[Any], tuple[NDArray[np.float32], NDArray[np.float32] | None]]

# torch's own dropout classes are inert in eval mode; any other _DropoutNd (baal's MC dropout, a custom one) is
# assumed to sample on every call.
_TORCH_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def is_stochastic(module: nn.Module) -> bool:
    """True if ``module`` itself draws random masks at inference (after baal's ``patch_module``)."""
    if getattr(module, "mc_sampling", False):  # a fine-tuned TorchScript trunk's dropout (engine.finetune)
        return True
    if isinstance(module, _DropoutNd):
        return module.training or type(module) not in _TORCH_DROPOUTS
    # baal's DropConnect layers are Linear/Conv subclasses, not _DropoutNd.
    return type(module).__name__.startswith("WeightDrop")


def _contains_stochastic(module: nn.Module) -> bool:
    return any(is_stochastic(m) for m in module.modules())


def _stages(module: nn.Module) -> list[nn.Module]:
    """Flatten a model into a list of modules applied in sequence, as far as its structure guarantees it."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [stage for child in module for stage in _stages(child)]
    features, head = getattr(module, "features", None), getattr(module, "head", None)
    if isinstance(features, nn.Module) and isinstance(head, nn.Module):
        # Contract (see architectures.py): forward(x) == head(features(x)). Verified before use.
        return _stages(features) + _stages(head)
    return [module]


def split_model(model: nn.Module) -> tuple[nn.Sequential, nn.Sequential] | None:
    """(deterministic prefix, suffix from the first stochastic stage), or None if there is no prefix to share."""
    stages = _stages(model)
    first = next((i for i, s in enumerate(stages) if _contains_stochastic(s)), len(stages))
    if first == 0:
        return None
    return nn.Sequential(*stages[:first]), nn.Sequential(*stages[first:])


def _last_linear(module: nn.Module) -> nn.Linear | None:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@contextmanager
def _dropout_off(model: nn.Module) -> Iterator[None]:
    """Every stochastic dropout layer of ``model`` is the identity inside the block: its deterministic version (what
    eval mode does for torch's dropout, and the expectation of inverted dropout). The layers' forward is replaced,
    not hooked, so no random number is drawn. baal's DropConnect layers (random weights, not activations) stay as
    they are."""
    layers = [m for m in model.modules() if isinstance(m, _DropoutNd) and is_stochastic(m)]
    # A module that samples by itself (engine.finetune.ScriptTrunk) is paused instead: its layers are compiled.
    paused = [m for m in model.modules() if getattr(m, "mc_sampling", False)]
    for m in layers:
        m.forward = _identity
    for p in paused:
        setattr(p, "mc_paused", True)  # noqa: B010 (a plain attribute of a module mypy knows only as nn.Module)
    try:
        yield
    finally:
        for m in layers:
            del m.forward
        for p in paused:
            setattr(p, "mc_paused", False)  # noqa: B010


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _to_probs(out: torch.Tensor, kind: OutputKind) -> torch.Tensor:
    if kind == "logits":
        return torch.softmax(out.float(), dim=-1)
    if kind == "log_probs":
        return out.float().exp()
    return out.float()


class MCDropout:
    """MC-dropout sampler over a torch classifier: ``sampler(x) -> (probs [n, C, T], embeddings [n, D] | None)``.

    The model is copied and patched with baal's ``patch_module`` (``patch=False`` keeps it as is, for models whose
    stochastic layers are already always-on), then put in eval mode so BatchNorm uses its running statistics.
    ``embeddings=True`` also returns the input of the last Linear layer from one extra pass with every dropout layer
    switched off: the deterministic penultimate features, for diversity-aware selection (k-center, BADGE). Not the
    mean over the T dropout passes: with the dropout just before the last Linear, that mean keeps a relative noise
    of about sqrt(p / ((1 - p) T)) per coordinate (22% at p = 0.5, T = 20), so distances between items would be
    partly dropout noise. On the fast path only the suffix runs again, on the prefix features already computed.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        iterations: int = 20,
        output: OutputKind = "logits",
        mode: Mode = "auto",
        max_rows: int = 16384,
        embeddings: bool = False,
        patch: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        if iterations < 1:
            raise ValueError("iterations must be >= 1")
        if patch:
            from baal.bayesian.dropout import patch_module  # baal is slow to import: only when a model is scored

            self.model = patch_module(model, inplace=False)
        else:
            self.model = copy.deepcopy(model)
        # The model, each batch and its T-fold replication live on this device (ALWEB_DEVICE when None); results
        # come back to the CPU as numpy.
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.iterations = iterations
        self.output: OutputKind = output
        self.requested_mode: Mode = mode
        self.max_rows = max_rows
        self.want_embeddings = embeddings
        self._split = split_model(self.model) if mode != "plain" else None
        self._mode: Literal["fast", "plain"] | None = None if self._split is not None else "plain"
        if mode == "fast" and self._split is None:
            raise ValueError("model cannot be split: no deterministic stage before the first dropout layer")
        self.stochastic = _contains_stochastic(self.model)

    @property
    def mode(self) -> Literal["fast", "plain"] | None:
        """The path chosen on the first batch ("fast" or "plain"); None before any batch."""
        return self._mode

    def _verify_split(self, x: torch.Tensor) -> bool:
        """Does suffix(prefix(x)) reproduce model(x) with identical RNG draws? Leaves the RNG state untouched."""
        assert self._split is not None
        prefix, suffix = self._split
        probe = x[: min(2, x.shape[0])]
        # Checked in float32 (no autocast): the question is whether the split computes the same function.
        state = rng_state(self.device)
        try:
            with torch.inference_mode():
                a = prefix(probe.clone())
                if not torch.equal(a, prefix(probe.clone())):
                    return False  # hidden randomness in the prefix: it must not be shared across samples
                set_rng_state(self.device, state)
                full = self.model(probe.clone())
                set_rng_state(self.device, state)
                split = suffix(prefix(probe.clone()))
            return full.shape == split.shape and torch.allclose(full, split, rtol=1e-4, atol=1e-5)
        except Exception:  # a split that crashes (shape mismatch in a custom forward) just means "not splittable"
            return False
        finally:
            set_rng_state(self.device, state)

    def __call__(self, x: Any) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        x = torch.as_tensor(x).to(self.device)
        if self._mode is None:
            ok = self._verify_split(x)
            if not ok and self.requested_mode == "fast":
                raise ValueError("the fast split does not reproduce the model's forward; use mode='plain'")
            self._mode = "fast" if ok else "plain"
        with torch.inference_mode(), autocast(self.device):
            if self._mode == "fast":
                assert self._split is not None
                prefix, suffix = self._split
                feats = prefix(x)
                out = self._forward_fast(feats)  # [T, n, C]
                # The MC passes first, so the deterministic pass leaves their dropout masks as they were.
                emb = self._embed(suffix, feats) if self.want_embeddings else None
            else:
                out = self._forward_plain(x)
                emb = self._embed(self.model, x) if self.want_embeddings else None
            probs = _to_probs(out, self.output).permute(1, 2, 0).contiguous()  # [n, C, T]
        return probs.cpu().numpy(), emb

    def _embed(self, module: nn.Module, x: torch.Tensor) -> NDArray[np.float32] | None:
        """The input of the model's last Linear on one pass of ``module`` with the dropout layers off."""
        target = _last_linear(self.model)
        if target is None:
            return None
        captured: list[torch.Tensor] = []
        hook = target.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0].reshape(inp[0].shape[0], -1)))
        try:
            with _dropout_off(self.model):
                module(x.clone())
        finally:
            hook.remove()
        return captured[-1].float().cpu().numpy() if captured else None

    def _forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        if not self.stochastic:  # nothing random: T identical passes would be wasted work
            return self.model(x).unsqueeze(0).expand(self.iterations, -1, -1)
        # clone: an in-place first layer must not alter the input seen by the next iteration.
        return torch.stack([self.model(x.clone()) for _ in range(self.iterations)])

    def _forward_fast(self, feats: torch.Tensor) -> torch.Tensor:
        """The T samples from the prefix's features (computed once): only the suffix runs on the replicated batch."""
        assert self._split is not None
        suffix = self._split[1]
        n = feats.shape[0]
        if len(suffix) == 0 or not _contains_stochastic(suffix):
            out = suffix(feats)
            return out.unsqueeze(0).expand(self.iterations, *out.shape)
        per_call = max(1, self.max_rows // max(n, 1))
        outs = []
        for t0 in range(0, self.iterations, per_call):
            m = min(per_call, self.iterations - t0)
            # repeat (a copy, never a view) so in-place layers in the suffix can't corrupt the shared features.
            rep = feats.repeat(m, *([1] * (feats.dim() - 1)))
            outs.append(suffix(rep).reshape(m, n, -1))
        return torch.cat(outs, dim=0)


@dataclass
class Batch:
    """One chunk of the pool. ``data`` may be a zero-arg callable so a skipped chunk is never loaded."""

    data: Any
    ids: Sequence[Any] | None = None
    size: int | None = None

    def __len__(self) -> int:
        if self.size is not None:
            return self.size
        if self.ids is not None:
            return len(self.ids)
        if callable(self.data):
            raise ValueError("a lazy Batch needs `size` or `ids`")
        return len(self.data)

    def load(self) -> Any:
        return self.data() if callable(self.data) else self.data


@dataclass
class ScoreChunk:
    """Per-item results for one chunk (or a whole pool, see ``concat_chunks``)."""

    index: int
    start: int
    ids: list[Any]
    heuristic: str
    uncertainty: NDArray[np.float64]  # higher = more informative
    probs: NDArray[np.float32]  # [n, C] mean over the T samples
    labels: NDArray[np.int64]  # argmax of probs; -1 where the model's output was non-finite
    confidence: NDArray[np.float32]  # max of probs; 0 where non-finite
    finite: NDArray[np.bool_]
    embeddings: NDArray[np.float32] | None = None
    samples: NDArray[np.float32] | None = field(default=None, repr=False)
    # Detection: per item, the predicted boxes as fractions of the image (engine.detection.box_fractions).
    boxes: list[list[dict[str, Any]]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)


def summarize(
    samples: NDArray[Any], *, heuristic: str, seed: int | Sequence[int] = 0
) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.bool_]]:
    """(uncertainty, mean probs, labels, confidence, finite) from probabilities [n, C, T]."""
    s = np.asarray(samples)
    if s.ndim == 2:
        s = s[:, :, None]
    if heuristic in NEEDS_SAMPLES and s.shape[2] < 2:
        raise ValueError(f"heuristic {heuristic!r} needs several MC samples (T >= 2); got T = {s.shape[2]}")
    finite = np.isfinite(s).all(axis=(1, 2))
    uncertainty = get_heuristic(heuristic)(s, seed=seed)
    probs = s.mean(axis=2, dtype=np.float64)
    probs[~finite] = 1.0 / s.shape[1]
    labels = probs.argmax(axis=1).astype(np.int64)
    confidence = probs.max(axis=1)
    labels[~finite] = -1
    confidence[~finite] = 0.0
    return uncertainty, probs.astype(np.float32), labels, confidence.astype(np.float32), finite


def score_chunks(
    sampler: Sampler,
    batches: Iterable[Any],
    *,
    heuristic: str = "bald",
    seed: int = 0,
    skip: Container[int] = (),
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
    keep_samples: bool = False,
) -> Iterator[ScoreChunk]:
    """Score the pool chunk by chunk; yields one ``ScoreChunk`` per batch, in order.

    ``batches`` yields ``Batch`` objects, tensors/arrays, or ``(x, ...)`` tuples (a DataLoader's output; x is used).
    Chunk indices in ``skip`` are consumed without inference (and without loading a lazy Batch): the caller passes
    the indices it already stored to resume. The dropout masks and stochastic heuristics are seeded from
    ``(seed, chunk index)``, so a resumed run produces the same values as an uninterrupted one.
    """
    get_heuristic(heuristic)  # fail before any inference on a typo
    start = 0
    for index, raw in enumerate(batches):
        batch = raw if isinstance(raw, Batch) else Batch(raw[0] if isinstance(raw, tuple | list) else raw)
        n = len(batch)
        if index not in skip:
            # MC masks drawn from a per-chunk seed (global RNG forked, so the caller's stream is untouched): a chunk
            # scores the same whether the run was interrupted or not, and resumed runs match uninterrupted ones.
            with torch.random.fork_rng(devices=rng_devices()):
                torch.manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
                samples, emb = sampler(batch.load())
            chunk_seed: int | tuple[int, int] = (seed, index) if heuristic in STOCHASTIC else seed
            unc, probs, labels, conf, finite = summarize(samples, heuristic=heuristic, seed=chunk_seed)
            ids = list(batch.ids) if batch.ids is not None else list(range(start, start + n))
            yield ScoreChunk(
                index=index,
                start=start,
                ids=ids,
                heuristic=heuristic,
                uncertainty=unc,
                probs=probs,
                labels=labels,
                confidence=conf,
                finite=finite,
                embeddings=emb,
                samples=samples if keep_samples else None,
            )
        start += n
        if on_progress is not None:
            on_progress(start, total)


def concat_chunks(chunks: Iterable[ScoreChunk]) -> ScoreChunk:
    """One ScoreChunk for a whole (small) pool: for tests, notebooks and pools that fit in memory."""
    parts = list(chunks)
    if not parts:
        raise ValueError("no chunk to concatenate")

    def cat(name: str) -> Any:
        values = [getattr(c, name) for c in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return ScoreChunk(
        index=-1,
        start=parts[0].start,
        ids=[i for c in parts for i in c.ids],
        heuristic=parts[0].heuristic,
        uncertainty=cat("uncertainty"),
        probs=cat("probs"),
        labels=cat("labels"),
        confidence=cat("confidence"),
        finite=cat("finite"),
        embeddings=cat("embeddings"),
        samples=cat("samples"),
        boxes=None if any(c.boxes is None for c in parts) else [b for c in parts for b in c.boxes or []],
    )


def iter_batches(data: Any, batch_size: int, *, ids: Sequence[Any] | None = None) -> Iterator[Batch]:
    """Lazy batches over an indexable pool (tensor, array, or a sequence of per-item tensors).

    Each Batch loads its slice only when scored, so skipping chunks on resume costs nothing.
    """
    n = len(data)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)

        def load(lo: int = lo, hi: int = hi) -> torch.Tensor:
            if isinstance(data, torch.Tensor | np.ndarray):
                return torch.as_tensor(data[lo:hi])
            return torch.stack([torch.as_tensor(data[i]) for i in range(lo, hi)])

        yield Batch(load, ids=list(ids[lo:hi]) if ids is not None else list(range(lo, hi)), size=hi - lo)


def score_model(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    iterations: int = 20,
    heuristic: str = "bald",
    seed: int = 0,
    embeddings: bool = False,
    output: OutputKind = "logits",
    mode: Mode = "auto",
    skip: Container[int] = (),
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
) -> Iterator[ScoreChunk]:
    """Convenience: ``score_chunks`` with an ``MCDropout`` sampler over ``model`` (on ``device``, by default
    ``ALWEB_DEVICE``)."""
    sampler = MCDropout(model, iterations=iterations, output=output, mode=mode, embeddings=embeddings, device=device)
    yield from score_chunks(
        sampler, batches, heuristic=heuristic, seed=seed, skip=skip, total=total, on_progress=on_progress
    )
