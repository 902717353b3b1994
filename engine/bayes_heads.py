"""Bayesian approximations for a head on frozen features, beside MC dropout (issue 19, "A linear probe is the floor").

MC dropout samples the posterior of a small head through its one dropout layer; on frozen features two other
approximations are cheap and often reported better calibrated; ``bench/models_bayes.py`` compares them:

- a **deep ensemble**: K heads trained with the same recipe from different seeds (different initial weights and
  shuffles); each member's softmax is one "sample" (Lakshminarayanan et al. 2017);
- a **last-layer Laplace approximation**: a Gaussian around the trained head's last ``nn.Linear`` (weights and
  bias), precision = generalised Gauss-Newton of the training loss + a prior precision chosen by the Laplace
  marginal likelihood (Daxberger et al. 2021, "Laplace Redux"); samples of those weights give the samples.

Both are *samplers* with the contract of ``engine.scoring.MCDropout``: ``sampler(x) -> (probs [n, C, T],
embeddings [n, D] | None)``, so ``engine.scoring.score_chunks`` and every heuristic (BALD, entropy, margin) take them
unchanged. Measured against MC dropout in docs/models.md ("Bayesian heads on frozen features"): neither was
credibly better, so MC dropout stays the product's method and these serve the benchmark. Plain torch:
laplace-torch would add backpack and curvlinops for one last layer whose Gauss-Newton matrix is a few lines
(below), exact rather than Kronecker-factored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from engine.device import resolve_device
from engine.training import DataLike, TrainConfig, TrainResult, balanced_class_weights, train_classifier

Prior = Literal["marglik", "validation"]
ENSEMBLE_SIZE = 5
LAPLACE_SAMPLES = 20  # as many as the product's default MC iterations
# Prior precisions searched: 1e-2 .. 1e4, a quarter decade apart (half a decade for the validation choice). The
# marginal likelihood picked 0.3-1 on the benchmark's heads; the validation NLL picked 10 to the top end.
PRIOR_GRID = tuple(float(v) for v in np.logspace(-2, 4, 25))
# Above this many last-layer parameters ((hidden + 1) x classes) the covariance is diagonal: a full one is P x P
# (4096: 134 MB in float64, eigenvalues in ~5 s on one core); the benchmark's heads have 1028 and 2827.
MAX_FULL_PARAMS = 4096


def member_seed(seed: int, member: int) -> int:
    """Member 0 uses ``seed`` itself (it is the model a single-head project trains); the others seeds drawn from
    (seed, member)."""
    if member == 0:
        return seed
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def train_ensemble(
    build: Callable[[int], tuple[nn.Module, TrainConfig]],
    train: DataLike,
    valid: DataLike | None = None,
    *,
    num_classes: int,
    size: int = ENSEMBLE_SIZE,
    test: DataLike | None = None,
) -> list[TrainResult]:
    """Train ``size`` members; ``build(k)`` returns member k's fresh network and its recipe (their seeds are the
    caller's: ``member_seed``), so every member is trained exactly as a single head would be."""
    results = []
    for k in range(size):
        model, config = build(k)
        results.append(train_classifier(model, train, valid, num_classes=num_classes, test=test, config=config))
    return results


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to approximate")
    return linears[-1]


def last_layer_inputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input of the last Linear, logits) of one deterministic pass (eval mode: dropout off), float32."""
    captured: list[torch.Tensor] = []
    hook = _last_linear(model).register_forward_hook(lambda _m, inp, _o: captured.append(inp[0]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(x)
    finally:
        hook.remove()
        model.train(was_training)
    return captured[-1].reshape(len(x), -1).float(), logits.float()


def _softmax_samples(logits: torch.Tensor) -> NDArray[np.float32]:
    """[T, n, C] logits -> [n, C, T] probabilities (the heuristics' layout)."""
    return torch.softmax(logits.float(), dim=-1).permute(1, 2, 0).contiguous().cpu().numpy()


class EnsembleSampler:
    """The K members' softmax as K samples; embeddings are member 0's penultimate features (dropout off)."""

    def __init__(
        self, models: Sequence[nn.Module], *, embeddings: bool = False, device: str | torch.device | None = None
    ) -> None:
        if len(models) < 2:
            raise ValueError("an ensemble needs at least 2 members")
        self.device = resolve_device(device)
        self.models = [copy.deepcopy(m).to(self.device).eval() for m in models]
        self.want_embeddings = embeddings

    def __call__(self, x: Any) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        x = torch.as_tensor(x).to(self.device)
        emb, first = last_layer_inputs(self.models[0], x)
        with torch.inference_mode():
            logits = torch.stack([first, *(m(x).float() for m in self.models[1:])])
        return _softmax_samples(logits), emb.cpu().numpy() if self.want_embeddings else None


@dataclass
class LastLayerLaplace:
    """A Gaussian over the last Linear's [weight | bias] (shape [C, D + 1]) of a trained model."""

    model: nn.Module  # the MAP model (eval mode); its other layers are used as they are
    mean: torch.Tensor  # [C, D + 1], the MAP weights and bias
    prior_precision: float
    structure: Literal["full", "diag"]
    # full: the upper Cholesky factor U of the posterior precision (U^T U), [P, P], P = C (D + 1), row-major
    # over mean; diag: the posterior standard deviations, [P].
    factor: torch.Tensor
    log_marglik: float | None  # at the chosen prior precision, when the marginal likelihood chose it

    def sample_weights(self, count: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` draws of [weight | bias], shape [count, C, D + 1]."""
        eps = torch.randn(count, self.mean.numel(), generator=generator, dtype=torch.float64)
        if self.structure == "full":
            # U^T U = precision  =>  U^{-1} eps ~ N(0, precision^{-1}).
            delta = torch.linalg.solve_triangular(self.factor, eps.T, upper=True).T
        else:
            delta = eps * self.factor
        return (self.mean.double().reshape(1, -1) + delta).float().reshape(count, *self.mean.shape)


def _weighted_hessian(phi: torch.Tensor, probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Gauss-Newton of sum_n w_n CE(W phi_n, y_n) w.r.t. [W | b] flattened row-major: block (c, d) is
    sum_n w_n (p_nc [c = d] - p_nc p_nd) phi_n phi_n^T (the exact Hessian of softmax cross-entropy in the last layer).
    phi [n, D + 1] (bias column included), probs [n, C], weights [n]; float64."""
    n_cls, dim = probs.shape[1], phi.shape[1]
    lam = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]  # [n, C, C]
    lam = lam * weights[:, None, None]
    h = torch.empty(n_cls, dim, n_cls, dim, dtype=torch.float64)
    for c in range(n_cls):
        for d in range(c, n_cls):
            block = phi.T @ (phi * lam[:, c, d, None])
            h[c, :, d, :] = block
            if d != c:
                h[d, :, c, :] = block.T
    return h.reshape(n_cls * dim, n_cls * dim)


def _log_marglik(nll: float, sq_norm: float, eig: torch.Tensor, tau: float) -> float:
    """Laplace evidence with prior N(0, I / tau): -nll - tau |theta|^2 / 2 - (log det(H + tau I) - P log tau) / 2
    (the 2 pi terms cancel; log det(H + tau I) - P log tau = sum log(1 + eig / tau)). ``eig``: H's eigenvalues
    (full) or its diagonal (diag)."""
    log_det_ratio = float(torch.log1p(eig.clamp_min(0.0) / tau).sum())
    return -nll - 0.5 * tau * sq_norm - 0.5 * log_det_ratio


def _factor(h: torch.Tensor, tau: float, kind: Literal["full", "diag"]) -> torch.Tensor:
    """The posterior's factor for prior precision ``tau``: upper Cholesky of H + tau I, or 1 / sqrt(diag + tau)."""
    if kind == "full":
        return torch.linalg.cholesky(h + tau * torch.eye(len(h), dtype=h.dtype), upper=True)
    return (h + tau).rsqrt()


def fit_laplace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    class_weights: bool = True,
    prior: Prior = "marglik",
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    prior_precision: float | None = None,
    structure: Literal["auto", "full", "diag"] = "auto",
) -> LastLayerLaplace:
    """Last-layer Laplace around ``model`` (trained, the MAP) on its training items ``x``, ``y``.

    The likelihood is the one the head was trained with: class-weighted cross-entropy (``engine.training``'s
    balanced weights, which sum to n, so the total evidence weight equals the labels). The prior precision:
    ``prior_precision`` if given; else ``prior="marglik"``: the ``PRIOR_GRID`` value of highest marginal likelihood
    (one eigendecomposition of the Hessian serves the whole grid); ``prior="validation"``: the value whose
    predictive has the lowest NLL on ``validation`` (the labels a project holds out anyway).
    """
    model = copy.deepcopy(model).cpu().eval()
    linear = _last_linear(model)
    feats, logits = last_layer_inputs(model, torch.as_tensor(x).float())
    phi = torch.cat([feats, torch.ones(len(feats), 1)], dim=1).double()
    probs = torch.softmax(logits.double(), dim=1)
    y = torch.as_tensor(y).long()
    w = balanced_class_weights(y.numpy(), num_classes).double()[y] if class_weights else torch.ones(len(y)).double()
    nll = float((w * -torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-300))).sum())
    bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
    mean = torch.cat([linear.weight.detach(), bias.detach()[:, None]], dim=1).double()
    n_params = mean.numel()
    kind: Literal["full", "diag"] = (
        structure if structure != "auto" else ("full" if n_params <= MAX_FULL_PARAMS else "diag")
    )
    # full: the Gauss-Newton matrix; diag: its diagonal, block (c, c): sum_n w_n p_nc (1 - p_nc) phi_n^2.
    h = (
        _weighted_hessian(phi, probs, w)
        if kind == "full"
        else ((w[:, None] * probs * (1 - probs)).T @ phi.square()).reshape(-1)
    )

    def posterior(tau: float, score: float | None) -> LastLayerLaplace:
        return LastLayerLaplace(model, mean.float(), tau, kind, _factor(h, tau, kind), score)

    if prior_precision is not None:
        return posterior(float(prior_precision), None)
    if prior == "validation":
        if validation is None or len(validation[1]) == 0:
            raise ValueError("prior='validation' needs validation items")
        x_val, y_val = torch.as_tensor(validation[0]).float(), torch.as_tensor(validation[1]).long()
        feats_val = last_layer_inputs(model, x_val)[0]
        best: tuple[float, LastLayerLaplace] | None = None
        for tau in PRIOR_GRID[::2]:  # half a decade apart: each value costs a Cholesky
            lap = posterior(tau, None)
            draws = lap.sample_weights(LAPLACE_SAMPLES, generator=torch.Generator().manual_seed(0))
            logits_val = torch.einsum("nd,tcd->tnc", feats_val, draws[:, :, :-1]) + draws[:, None, :, -1]
            p_val = torch.softmax(logits_val, dim=-1).mean(dim=0)
            val_nll = float(-torch.log(p_val[torch.arange(len(y_val)), y_val].clamp_min(1e-12)).mean())
            if best is None or val_nll < best[0]:
                best = (val_nll, lap)
        assert best is not None
        return best[1]
    eig = torch.linalg.eigvalsh(h) if kind == "full" else h
    sq_norm = float(mean.square().sum())
    scores = [_log_marglik(nll, sq_norm, eig, tau) for tau in PRIOR_GRID]
    best_i = int(np.argmax(scores))
    return posterior(PRIOR_GRID[best_i], scores[best_i])


class LaplaceSampler:
    """T samples of the last layer's weights, drawn once from ``seed`` (the same draws for every chunk of a pool,
    so a resumed scoring matches an uninterrupted one); the layers below run once per item."""

    def __init__(
        self,
        laplace: LastLayerLaplace,
        *,
        samples: int = LAPLACE_SAMPLES,
        seed: int = 0,
        embeddings: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be >= 1")
        self.device = resolve_device(device)
        self.model = copy.deepcopy(laplace.model).to(self.device).eval()
        draws = laplace.sample_weights(samples, generator=torch.Generator().manual_seed(seed))
        self.weight = draws[:, :, :-1].to(self.device)  # [T, C, D]
        self.bias = draws[:, :, -1].to(self.device)  # [T, C]
        self.want_embeddings = embeddings

    def __call__(self, x: Any) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        feats, _ = last_layer_inputs(self.model, torch.as_tensor(x).to(self.device))
        logits = torch.einsum("nd,tcd->tnc", feats, self.weight) + self.bias[:, None, :]
        return _softmax_samples(logits), feats.cpu().numpy() if self.want_embeddings else None


def calibration(probs: NDArray[Any], y: NDArray[Any], *, bins: int = 15) -> dict[str, float]:
    """Expected calibration error (top label, ``bins`` equal-width confidence bins) and mean negative
    log-likelihood of predictive probabilities [n, C] against labels [n]."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(float((pred[members] == y[members]).mean()) - float(conf[members].mean()))
    nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())
    return {"ece": round(float(ece), 4), "nll": round(nll, 4)}
