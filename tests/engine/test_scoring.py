"""The fast path (prefix once, suffix on the T-replicated batch) against the whole model run T times."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from engine.architectures import ImageCNN, TextHead
from engine.scoring import (
    Batch,
    MCDropout,
    concat_chunks,
    iter_batches,
    score_chunks,
    score_model,
    split_model,
)


def small_cnn(seed: int = 0) -> ImageCNN:
    torch.manual_seed(seed)
    model = ImageCNN(4, 16, 1, width=8, hidden=32, dropout=0.5)
    # Non-trivial BatchNorm statistics, so eval mode matters.
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 1, 16, 16))
    return model.eval()


def test_fast_path_equals_whole_model_t_times_with_the_same_seed() -> None:
    model = small_cnn()
    x = torch.randn(10, 1, 16, 16)
    fast = MCDropout(model, iterations=7, mode="auto")
    plain = MCDropout(model, iterations=7, mode="plain")
    torch.manual_seed(123)
    a, _ = fast(x)
    torch.manual_seed(123)
    b, _ = plain(x)
    assert fast.mode == "fast" and plain.mode == "plain"
    assert a.shape == (10, 4, 7)
    # Same masks (torch's CPU generator draws a [T*n, D] mask as the same stream as T draws of [n, D]).
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.std(axis=2).max() > 1e-3  # dropout really is on at inference (baal patch_module)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
    # A smaller replication budget (several suffix calls per batch) draws the same masks too.
    small = MCDropout(model, iterations=7, max_rows=20)
    torch.manual_seed(123)
    c, _ = small(x)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    assert type(model.head[3]) is nn.Dropout  # type: ignore[index]  # the caller's model is not patched


class MaskBank(_DropoutNd):
    """Dropout with explicit masks [T, n, D]: call k of the plain path uses mask k; the fast path's single call on
    the t-major replicated batch uses them all. Identical masks whatever the RNG, and several dropout layers."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__(p=0.5)
        self.masks = masks
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n, d = self.masks.shape
        if x.shape[0] == t * n:
            mask = self.masks.reshape(t * n, d)
        elif x.shape[0] != n:  # the engine's split check on a 2-item probe: any fixed mask will do
            mask = self.masks[0, : x.shape[0]]
        else:
            mask = self.masks[self.calls % t]
            self.calls += 1
        return x * mask / (1 - self.p)


def test_fast_path_equals_plain_path_with_two_dropout_layers_and_explicit_masks() -> None:
    torch.manual_seed(0)
    t, n = 5, 6
    masks1 = (torch.rand(t, n, 16) > 0.5).float()
    masks2 = (torch.rand(t, n, 8) > 0.5).float()

    def build() -> nn.Sequential:
        torch.manual_seed(1)
        return nn.Sequential(
            nn.Linear(12, 16),
            nn.ReLU(),
            MaskBank(masks1),
            nn.Linear(16, 8),
            nn.ReLU(),
            MaskBank(masks2),
            nn.Linear(8, 3),
        ).eval()

    x = torch.randn(n, 12)
    fast = MCDropout(build(), iterations=t, patch=False)
    a, _ = fast(x)
    b, _ = MCDropout(build(), iterations=t, mode="plain", patch=False)(x)
    assert fast.mode == "fast"
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    prefix, suffix = split_model(build())  # type: ignore[misc]
    assert len(prefix) == 2 and isinstance(suffix[0], MaskBank)


class CustomForward(nn.Module):
    """Not splittable: forward is not head(features(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x) * 2.0)


def test_unsplittable_models_fall_back_to_the_plain_path() -> None:
    x = torch.randn(4, 6)
    torch.manual_seed(0)
    model = CustomForward()
    sampler = MCDropout(model, iterations=5)
    torch.manual_seed(0)
    a, _ = sampler(x)
    assert sampler.mode == "plain"  # the verification caught the mismatch
    torch.manual_seed(0)
    b, _ = MCDropout(model, iterations=5, mode="plain")(x)
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="does not reproduce"):
        MCDropout(CustomForward(), iterations=5, mode="fast")(x)
    # Dropout first: nothing deterministic to share.
    first = nn.Sequential(nn.Dropout(0.2), nn.Linear(6, 3))
    assert split_model(MCDropout(first).model) is None
    assert MCDropout(first, iterations=3)(x)[0].shape == (4, 3, 3)


def test_model_without_dropout_gives_identical_samples_and_zero_bald() -> None:
    model = nn.Sequential(nn.Linear(6, 3)).eval()
    chunk = concat_chunks(score_model(model, [torch.randn(5, 6)], iterations=4, heuristic="bald"))
    np.testing.assert_allclose(chunk.uncertainty, 0.0, atol=1e-7)


def test_embeddings_are_the_deterministic_penultimate_features() -> None:
    """Issue 14: the embedding is the last Linear's input with dropout off, never a noisy mean over the T passes."""
    model = TextHead(3, in_dim=10, hidden=16, dropout=0.5).eval()
    x = torch.randn(7, 10)
    with torch.no_grad():
        hidden = model.features(x).numpy()  # torch dropout is inert in eval mode: the deterministic features
    runs = []
    for mode, iterations, seed in (("auto", 20, 5), ("auto", 3, 6), ("plain", 20, 7), ("plain", 1, 8)):
        torch.manual_seed(seed)
        _, emb = MCDropout(model, iterations=iterations, embeddings=True, mode=mode)(x)  # type: ignore[arg-type]
        assert emb is not None and emb.shape == (7, 16)
        runs.append(emb)
    for emb in runs:  # identical whatever T, the seed or the path
        np.testing.assert_allclose(emb, hidden, rtol=1e-5, atol=1e-6)


def test_the_embedding_pass_leaves_the_mc_samples_unchanged() -> None:
    model = small_cnn()
    x = torch.randn(6, 1, 16, 16)
    torch.manual_seed(11)
    with_emb, emb = MCDropout(model, iterations=5, embeddings=True)(x)
    torch.manual_seed(11)
    without, none = MCDropout(model, iterations=5)(x)
    assert none is None and emb is not None
    np.testing.assert_array_equal(with_emb, without)
    assert len({p.flatten()[0] for p in with_emb.transpose(2, 0, 1)}) > 1  # the T samples still differ


def test_chunks_resume_to_the_same_values_and_skip_without_loading() -> None:
    model = small_cnn(seed=3)
    pool = torch.randn(50, 1, 16, 16)
    for heuristic in ("bald", "random", "power_bald"):
        full = list(score_model(model, iter_batches(pool, 16), iterations=6, heuristic=heuristic, seed=9))
        assert [c.index for c in full] == [0, 1, 2, 3] and [len(c) for c in full] == [16, 16, 16, 2]
        loads: list[int] = []

        def lazy(lo: int, hi: int, loads: list[int] = loads) -> Batch:
            def load() -> torch.Tensor:
                loads.append(lo)
                return pool[lo:hi]

            return Batch(load, size=hi - lo)

        batches = [lazy(lo, min(lo + 16, 50)) for lo in range(0, 50, 16)]
        resumed = list(score_model(model, batches, iterations=6, heuristic=heuristic, seed=9, skip={0, 2}))
        assert [c.index for c in resumed] == [1, 3] and loads == [16, 48]
        for r in resumed:
            f = full[r.index]
            assert r.start == f.start and r.ids == f.ids
            np.testing.assert_array_equal(r.uncertainty, f.uncertainty)
            np.testing.assert_array_equal(r.probs, f.probs)


def test_results_progress_and_ids() -> None:
    model = small_cnn()
    pool = torch.randn(20, 1, 16, 16)
    seen: list[tuple[int, int | None]] = []
    chunk = concat_chunks(
        score_model(
            model,
            iter_batches(pool, 8, ids=[f"item-{i}" for i in range(20)]),
            iterations=5,
            heuristic="margin",
            total=20,
            on_progress=lambda done, total: seen.append((done, total)),
        )
    )
    assert seen == [(8, 20), (16, 20), (20, 20)]
    assert chunk.ids[0] == "item-0" and len(chunk) == 20
    assert chunk.probs.shape == (20, 4) and chunk.labels.dtype == np.int64
    np.testing.assert_array_equal(chunk.labels, chunk.probs.argmax(axis=1))
    np.testing.assert_allclose(chunk.confidence, chunk.probs.max(axis=1))
    assert ((chunk.uncertainty >= 0) & (chunk.uncertainty <= 1)).all() and chunk.finite.all()
    # A DataLoader-style (x, y) batch is accepted too.
    assert len(next(score_model(model, [(pool[:3], torch.zeros(3))], iterations=2, heuristic="entropy"))) == 3


def test_non_finite_model_outputs_are_flagged() -> None:
    probs = np.full((3, 4, 5), 0.25, dtype=np.float32)
    probs[0] = [[0.7], [0.1], [0.1], [0.1]]
    probs[1, 2, 0] = np.nan
    chunk = next(score_chunks(lambda _x: (probs, None), [np.zeros(3)], heuristic="entropy"))
    assert list(chunk.finite) == [True, False, True]
    assert chunk.labels[1] == -1 and chunk.confidence[1] == 0.0
    assert chunk.uncertainty[1] == pytest.approx(math.log(4))
    np.testing.assert_allclose(chunk.probs[1], 0.25)
    with pytest.raises(ValueError, match="MC samples"):
        next(score_chunks(lambda _x: (probs[:, :, :1], None), [np.zeros(3)], heuristic="bald"))
    with pytest.raises(ValueError, match="unknown heuristic"):
        next(score_chunks(lambda _x: (probs, None), [np.zeros(3)], heuristic="nope"))


def test_entropy_and_margin_top_k_read_the_mean_of_per_pass_probabilities() -> None:
    """Issue 14: the topk heuristics get per-sample probabilities (softmax per pass, then the mean), never the
    softmax of averaged logits (baal's Entropy and Margin average logits)."""
    model = small_cnn(seed=4)
    x = torch.randn(12, 1, 16, 16)
    for name in ("entropy", "margin"):
        torch.manual_seed(0)
        sampler = MCDropout(model, iterations=6)
        chunk = next(score_chunks(sampler, [x], heuristic=name, seed=2, keep_samples=True))
        assert chunk.samples is not None
        np.testing.assert_allclose(chunk.samples.sum(axis=1), 1.0, atol=1e-5)  # probabilities, pass by pass
        mean = chunk.samples.astype(np.float64).mean(axis=2)
        top2 = np.sort(mean, axis=1)[:, -2:]
        expected = -(mean * np.log(mean)).sum(axis=1) if name == "entropy" else 1.0 - (top2[:, 1] - top2[:, 0])
        np.testing.assert_allclose(chunk.uncertainty, expected, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(chunk.probs, mean, atol=1e-6)
