"""Cut large images into a grid of tiles at ingest; each tile is an item that knows its source image.

Boxes are clipped to each tile and kept where at least MIN_VISIBLE of their area lies inside it, so a
detector is not trained on slivers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from PIL import Image

from .rows import ItemImportError, ItemRow, Media

MIN_VISIBLE = 0.3


def parse_tile(spec: str) -> tuple[int, int]:
    """'6x4' → (6 columns, 4 rows)."""
    try:
        cols, rows = (int(v) for v in spec.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"tile must look like COLSxROWS, e.g. 6x4, got {spec!r}") from exc
    if not (1 <= cols <= 64 and 1 <= rows <= 64):
        raise ValueError("tile columns and rows must be between 1 and 64")
    return cols, rows


def _clip_boxes(boxes: Any, x0: float, y0: float, tw: float, th: float) -> Any:
    if not isinstance(boxes, list):
        return boxes
    out = []
    for b in boxes:
        left, top = max(b["x"], x0), max(b["y"], y0)
        right, bottom = min(b["x"] + b["w"], x0 + tw), min(b["y"] + b["h"], y0 + th)
        if right <= left or bottom <= top:
            continue
        if (right - left) * (bottom - top) < MIN_VISIBLE * b["w"] * b["h"]:
            continue
        out.append(
            {
                "label": b["label"],
                "x": (left - x0) / tw,
                "y": (top - y0) / th,
                "w": min((right - left) / tw, 1.0),
                "h": min((bottom - top) / th, 1.0),
            }
        )
    return out


def tile_rows(rows: Iterator[ItemRow], cols: int, nrows: int) -> Iterator[ItemRow]:
    for row in rows:
        if row.media is None:
            raise ItemImportError(row.file, row.line, "only image files can be tiled (not URLs or text)", "image")
        with Image.open(io.BytesIO(row.media.data)) as img:
            img.load()  # decodes: the reader has already decoded it once (images.decode_image)
            width, height = img.size
            if width < cols or height < nrows:
                raise ItemImportError(
                    row.file, row.line, f"a {width}x{height} image cannot be cut into {cols}x{nrows} tiles", "image"
                )
            for r in range(nrows):
                for c in range(cols):
                    box = (c * width // cols, r * height // nrows, (c + 1) * width // cols, (r + 1) * height // nrows)
                    buf = io.BytesIO()
                    img.crop(box).save(buf, format="PNG")
                    x0, y0 = box[0] / width, box[1] / height
                    tw, th = (box[2] - box[0]) / width, (box[3] - box[1]) / height
                    yield ItemRow(
                        key=f"{row.key}#r{r}c{c}",
                        file=row.file,
                        line=row.line,
                        media=Media(buf.getvalue(), "png", box[2] - box[0], box[3] - box[1]),
                        label=_clip_boxes(row.label, x0, y0, tw, th) if row.label is not None else None,
                        ground_truth=_clip_boxes(row.ground_truth, x0, y0, tw, th)
                        if row.ground_truth is not None
                        else None,
                        metadata={**row.metadata, "tile": {"row": r, "col": c, "box": list(box)}},
                        source=row.key,
                    )
