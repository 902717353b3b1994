"""The datasets of ``bench/learning.py``: all available offline, none generated to favour a method.

Each ``Dataset`` carries its provenance (written into the RESULT and docs/learning.md) and its ``Plan``: the
labeling budget of a run (initial labels, labels per cycle, cycles) and the evaluation sizes. Validation is
``5 x classes`` items everywhere, the rule issue 14 gives for a project's evaluation target (at least ~5 per class).
Text is embedded once with alweb's own frozen encoder (all-MiniLM-L6-v2, ``engine.text``) and cached on disk.
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench-learning"
DPKG_STATUS = Path("/var/lib/dpkg/status")
MIN_SECTION = 15  # Debian sections with fewer installed packages are dropped (too few to split three ways)
ZIPF_EXPONENT = 1.0  # the long-tail digits: class rank r (digit r) keeps a share (r + 1) ** -1 of its items


@dataclass(frozen=True)
class Plan:
    initial: int  # seeded random initial labels, identical for every arm
    step: int  # labels each later cycle acquires
    cycles: int  # acquisitions after the initial set
    n_valid: int  # validation labels, spent (counted on the x axis)
    n_test: int  # held-out test items: only ever used to draw the curve


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: Literal["image", "text"]
    x: NDArray[np.float32]  # images [n, 1, h, w] in [0, 1], or MiniLM embeddings [n, 384]
    y: NDArray[np.int64]
    labels: list[str]
    provenance: str
    plan: Plan
    texts: tuple[str, ...] = ()  # the raw texts of a text set, in the order of x (fine-tuning reads them)

    def describe(self) -> dict[str, object]:
        counts = np.bincount(self.y, minlength=len(self.labels))
        return {
            "items": len(self.y),
            "classes": len(self.labels),
            "largest_class_share": round(float(counts.max() / counts.sum()), 3),
            "smallest_class": int(counts.min()),
            "provenance": self.provenance,
        }


def _digits() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # Native 8x8 size, one channel, scaled to [0, 1] (the raw values are counts 0..16).
    return (d.images[:, None, :, :] / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_iid() -> Dataset:
    x, y = _digits()
    return Dataset(
        name="digits-iid",
        kind="image",
        x=x,
        y=y,
        labels=[str(d) for d in range(10)],
        provenance="scikit-learn load_digits (UCI optical recognition of handwritten digits: 1797 8x8 images "
        "written by 43 people), as shipped; pool, validation and test drawn i.i.d. from it",
        plan=Plan(initial=20, step=20, cycles=9, n_valid=50, n_test=450),
    )


def digits_longtail() -> Dataset:
    x, y = _digits()
    # Thin the WHOLE set to a Zipf-like tail before any split (fixed seed: this is the dataset, not a seed's
    # draw), so validation and test share the pool's imbalance, as they would in a real project.
    rng = np.random.default_rng(0)
    keep = np.zeros(len(y), dtype=bool)
    for d in range(10):
        members = np.flatnonzero(y == d)
        n = max(1, round(len(members) * (d + 1) ** -ZIPF_EXPONENT))
        keep[rng.choice(members, size=n, replace=False)] = True
    return Dataset(
        name="digits-longtail",
        kind="image",
        x=x[keep],
        y=y[keep],
        labels=[str(d) for d in range(10)],
        provenance=f"scikit-learn load_digits thinned once (seed 0) so digit d keeps (d+1)^-{ZIPF_EXPONENT:g} of "
        "its images (Zipf-like: 0 keeps all, 9 keeps a tenth), before splitting: pool and test share the tail",
        plan=Plan(initial=20, step=10, cycles=9, n_valid=50, n_test=130),
    )


def _embed(texts: list[str]) -> NDArray[np.float32]:
    """MiniLM embeddings, cached by content: encoding ~2000 texts takes a minute on one core; the cache key is the
    texts themselves, so a changed dpkg database is re-encoded rather than served stale."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:20]
    path = CACHE / f"minilm-{key}.npy"
    if path.exists():
        return np.load(path)
    from engine.text import MiniLMEncoder

    emb = MiniLMEncoder().encode(texts, batch_size=32).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    return emb


def topics() -> Dataset:
    from campaigns.demo_data import TOPIC_LABELS, write_topics

    with tempfile.TemporaryDirectory() as tmp, write_topics(Path(tmp), n=1200, seed=0).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["text"] for r in rows]
    return Dataset(
        name="support-topics",
        kind="text",
        x=_embed(texts),
        y=np.asarray([TOPIC_LABELS.index(r["ground_truth"]) for r in rows], dtype=np.int64),
        labels=list(TOPIC_LABELS),
        provenance="GENERATED by alweb (campaigns/demo_data.py write_topics, n=1200, seed 0): template sentences "
        "with 2-4 topic words among filler, 30% with a word of another topic; four balanced classes",
        plan=Plan(initial=8, step=8, cycles=9, n_valid=20, n_test=300),
        texts=tuple(texts),
    )


def read_dpkg(path: Path = DPKG_STATUS) -> list[tuple[str, str]]:
    """(section, description) per installed package: the short description line and the long text after it."""
    records: list[tuple[str, str]] = []
    for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        section, desc, in_desc = "", [], False
        for line in block.splitlines():
            if line.startswith("Section:"):
                section = line.split(":", 1)[1].strip().rsplit("/", 1)[-1]  # "contrib/net" -> "net"
                in_desc = False
            elif line.startswith("Description:"):
                desc, in_desc = [line.split(":", 1)[1].strip()], True
            elif in_desc and line.startswith(" "):
                text = line.strip()
                desc.append("" if text == "." else text)  # " ." is Debian's paragraph break
            else:
                in_desc = False
        if section and desc and desc[0]:
            records.append((section, " ".join(t for t in desc if t)))
    return records


def dpkg_sections() -> Dataset:
    records = read_dpkg()
    counts = Counter(s for s, _ in records)
    labels = sorted(s for s, c in counts.items() if c >= MIN_SECTION)
    kept = [(s, d) for s, d in records if s in labels]
    n, k = len(kept), len(labels)
    return Dataset(
        name="debian-sections",
        kind="text",
        x=_embed([d for _, d in kept]),
        y=np.asarray([labels.index(s) for s, _ in kept], dtype=np.int64),
        labels=labels,
        provenance=f"written by people: descriptions of the Debian packages installed on this machine "
        f"({DPKG_STATUS}), labeled by their Section: field; the {k} sections with >= {MIN_SECTION} packages, "
        f"{n} of {len(records)} records (natural imbalance: 'libs' dominates)",
        # A quarter for test, as for the digits; the pool is what is left after validation.
        plan=Plan(initial=22, step=22, cycles=9, n_valid=5 * k, n_test=n // 4),
        texts=tuple(d for _, d in kept),
    )


DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits-iid": digits_iid,
    "digits-longtail": digits_longtail,
    "support-topics": topics,
    "debian-sections": dpkg_sections,
}
