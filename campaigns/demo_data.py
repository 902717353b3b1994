"""Data sets alweb generates offline for demos, simulations and tests (no download at run time).

- digits: scikit-learn's 8x8 handwritten digits rendered as PNG images, optionally with a skewed class balance;
- topics: short product-review-like sentences about four topics built from templates, with word noise.
Both come as a folder with a CSV whose `ground_truth` column lets the oracle annotator answer.
"""

from __future__ import annotations

import csv
import random
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


def write_digits(folder: Path, *, skew: float = 0.0, size: int = 32, limit: int | None = None, seed: int = 0) -> Path:
    """PNG digits under `folder/images/`, and `folder/digits.csv` (image, ground_truth). Returns the CSV path.

    `skew` in [0, 1): keep each digit d with probability 1 - skew * d / 9, so 0 stays common and 9 becomes rare.
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
            if skew and rng.random() > 1 - skew * int(target) / 9:
                continue
            if limit is not None and kept >= limit:
                break
            pixels = (img / 16.0 * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BILINEAR).save(
                folder / "images" / f"digit-{i:04d}.png"
            )
            writer.writerow([f"digit-{i:04d}", f"images/digit-{i:04d}.png", str(int(target))])
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
