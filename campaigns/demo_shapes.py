"""A detection data set alweb generates offline (beside campaigns.demo_data's digits and topics): shapes with boxes.

Each image holds one to four shapes (square, circle, triangle, cross) of random colour and size on a noisy
background, with a box around each. The class mix is imbalanced (squares common, crosses rare), as real detection
pools are: a rare class is what active learning should find faster than random sampling. Boxes are alweb's
(``{label, x, y, w, h}``, top-left corner and size as fractions of the image).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

SHAPE_LABELS = ["square", "circle", "triangle", "cross"]
# The class mix of the generated objects: 55% squares, 25% circles, 14% triangles, 6% crosses.
SHAPE_WEIGHTS = (0.55, 0.25, 0.14, 0.06)


def _overlaps(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x, y, s, _ = box
    return any(x < px + ps + 1 and px < x + s + 1 and y < py + ps + 1 and py < y + s + 1 for px, py, ps, _ in placed)


def _draw(draw: ImageDraw.ImageDraw, kind: str, x: int, y: int, s: int, colour: tuple[int, int, int]) -> None:
    if kind == "square":
        draw.rectangle([x, y, x + s - 1, y + s - 1], fill=colour)
    elif kind == "circle":
        draw.ellipse([x, y, x + s - 1, y + s - 1], fill=colour)
    elif kind == "triangle":
        draw.polygon([(x + s / 2, y), (x, y + s - 1), (x + s - 1, y + s - 1)], fill=colour)
    else:  # cross: two bars a third of the size wide
        t = max(s // 3, 1)
        draw.rectangle([x + (s - t) // 2, y, x + (s - t) // 2 + t - 1, y + s - 1], fill=colour)
        draw.rectangle([x, y + (s - t) // 2, x + s - 1, y + (s - t) // 2 + t - 1], fill=colour)


def shape_image(rng: np.random.Generator, size: int = 64) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One RGB image and its boxes."""
    background = rng.normal(110, 25, size=(size, size, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background, mode="RGB")
    draw = ImageDraw.Draw(image)
    placed: list[tuple[int, int, int, int]] = []
    boxes: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.choice(len(SHAPE_LABELS), p=SHAPE_WEIGHTS))
        for _attempt in range(10):  # a free place, or the shape is left out
            s = int(rng.integers(size // 6, size // 3 + 1))
            x, y = (int(v) for v in rng.integers(0, size - s + 1, size=2))
            if not _overlaps((x, y, s, kind), placed):
                break
        else:
            continue
        placed.append((x, y, s, kind))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        _draw(draw, SHAPE_LABELS[kind], x, y, s, colour)  # type: ignore[arg-type]
        boxes.append({"label": SHAPE_LABELS[kind], "x": x / size, "y": y / size, "w": s / size, "h": s / size})
    return image, boxes


def shapes_arrays(n: int, *, size: int = 64, seed: int = 0) -> tuple[NDArray[np.float32], list[list[dict[str, Any]]]]:
    """`n` images as floats [n, 3, size, size] in [0, 1] (the models' input) and their boxes."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    boxes = []
    for i in range(n):
        image, image_boxes = shape_image(rng, size)
        images[i] = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        boxes.append(image_boxes)
    return images, boxes


def write_shapes(folder: Path, *, n: int = 400, size: int = 64, seed: int = 0) -> Path:
    """PNGs under `folder/images/` and `folder/shapes.jsonl` (key, image, ground_truth boxes). Returns the path."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / "shapes.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            image, boxes = shape_image(rng, size)
            name = f"shapes-{i:05d}"
            image.save(folder / "images" / f"{name}.png")
            fh.write(json.dumps({"key": name, "image": f"images/{name}.png", "ground_truth": boxes}) + "\n")
    return path
