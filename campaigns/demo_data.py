"""Data sets alweb generates offline for demos, simulations and tests (no download at run time).

- digits: scikit-learn's 8x8 handwritten digits rendered as PNG images, optionally with a skewed class balance;
- topics: short product-review-like sentences about four topics built from templates, with word noise.
Both come as a folder with a CSV whose `ground_truth` column lets the oracle annotator answer.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

DIGIT_LABELS = [str(d) for d in range(10)]
TOPIC_LABELS = ["billing", "shipping", "quality", "support"]

_TOPIC_WORDS = {
    "billing": ["invoice", "charge", "refund", "price", "payment", "card", "bill", "overcharged", "receipt", "fee"],
    "shipping": ["delivery", "package", "courier", "arrived", "late", "tracking", "shipped", "box", "parcel", "post"],
    "quality": ["broken", "sturdy", "material", "cheap", "durable", "cracked", "works", "flimsy", "build", "finish"],
    "support": ["agent", "helpful", "call", "chat", "answered", "rude", "ticket", "waited", "email", "staff"],
}
_FILLER = ["the", "my", "was", "really", "very", "and", "it", "this", "not", "so", "again", "today", "order", "item"]


def _jitter(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A near-duplicate: shifted by up to one pixel, with a little noise (a re-shot or re-scanned item)."""
    dy, dx = rng.integers(-1, 2, size=2)
    shifted = np.roll(np.roll(pixels.astype(np.int16), dy, axis=0), dx, axis=1)
    return np.clip(shifted + rng.normal(0, 12, size=pixels.shape), 0, 255).astype(np.uint8)


def write_digits(
    folder: Path,
    *,
    skew: float = 0.0,
    size: int = 32,
    limit: int | None = None,
    duplicates: int = 0,
    balanced: Callable[[str], bool] | None = None,
    seed: int = 0,
) -> Path:
    """PNG digits under `folder/images/`, and `folder/digits.csv` (image, ground_truth). Returns the CSV path.

    `skew` in [0, 1): keep each digit d with probability 1 - skew * d / 9, so 0 stays common and 9 becomes rare.
    `duplicates`: near-duplicate copies added per image of digit 0, falling linearly to none for digit 9: the
    redundancy real pools have (bursts of similar photos of the common things) and the reason random sampling
    wastes labels on easy, repeated items.
    `balanced(key)`: items for which it is true escape the skew, e.g. evaluation splits kept class-balanced, as
    curated test sets are, while the pool has the real-world imbalance.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / "digits.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "image", "ground_truth"])
        kept = 0
        for i, (img, target) in enumerate(zip(digits.images, digits.target, strict=True)):
            key = f"digit-{i:04d}"
            exempt = balanced is not None and balanced(key)
            if skew and rng.random() > 1 - skew * int(target) / 9 and not exempt:
                continue
            if limit is not None and kept >= limit:
                break
            pixels = (img / 16.0 * 255).astype(np.uint8)
            copies = round(duplicates * (9 - int(target)) / 9)
            for copy in range(1 if exempt else copies + 1):
                name = f"digit-{i:04d}" + (f"-dup{copy}" if copy else "")
                if copy and balanced is not None and balanced(name):
                    continue  # near-duplicates stay out of the evaluation splits
                variant = _jitter(pixels, rng) if copy else pixels
                Image.fromarray(variant, mode="L").resize((size, size), Image.Resampling.BILINEAR).save(
                    folder / "images" / f"{name}.png"
                )
                writer.writerow([name, f"images/{name}.png", str(int(target))])
            kept += 1
    return path


def write_topics(folder: Path, *, n: int = 1200, seed: int = 0) -> Path:
    """`folder/topics.csv` (key, text, ground_truth): sentences with 2-4 topic words among filler. Returns the path."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "topics.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "text", "ground_truth"])
        for i in range(n):
            topic = TOPIC_LABELS[i % len(TOPIC_LABELS)]
            words = rng.sample(_TOPIC_WORDS[topic], rng.randint(2, 4))
            # Some noise: a word from another topic, so the task is not trivially separable.
            if rng.random() < 0.3:
                other = rng.choice([t for t in TOPIC_LABELS if t != topic])
                words.append(rng.choice(_TOPIC_WORDS[other]))
            words += rng.sample(_FILLER, rng.randint(3, 6))
            rng.shuffle(words)
            writer.writerow([f"review-{i:05d}", " ".join(words).capitalize() + ".", topic])
    return path
