"""COCO detection JSON: images resolved next to the file (or in its `images/` folder), boxes per image.

An upload is one file, so a COCO dataset arrives as a zip of the JSON and its images: `read_coco_zip` unpacks the
(already checked) zip into a temporary folder and reads it like a local COCO file."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .images import ImageEntry, archive_errors, list_images, read_local_image, safe_join
from .jsonlimits import JSONLimitError, check_json_text
from .rows import ItemImportError, ItemRow, LabelSpec, validate_split


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        check_json_text(text, max_bytes=len(text))
        doc = json.loads(text)
    except UnicodeDecodeError as exc:
        raise ItemImportError(path.name, None, f"not valid UTF-8 ({exc.reason})") from exc
    except JSONLimitError as exc:
        raise ItemImportError(path.name, None, exc.reason) from None
    except json.JSONDecodeError as exc:
        raise ItemImportError(path.name, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise ItemImportError(path.name, None, "not a COCO file: no 'images' list")
    return doc


def _is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def read_coco(path: Path, *, spec: LabelSpec, max_pixels: int, labels_as: str) -> Iterator[ItemRow]:
    file = path.name
    doc = _load(path)
    for section in ("categories", "annotations"):
        if not isinstance(doc.get(section, []), list):
            raise ItemImportError(file, section, "must be a list")
    categories: dict[int | str, Any] = {}
    for n, c in enumerate(doc.get("categories", [])):
        if isinstance(c, dict):
            if not _is_id(c.get("id")):
                raise ItemImportError(file, f"categories[{n}]", "id must be an integer or a string")
            categories[c["id"]] = c.get("name")
    unknown = sorted(str(n) for n in categories.values() if n not in spec.labels)
    if unknown:
        raise ItemImportError(file, "categories", f"unknown label(s): {', '.join(unknown)}")
    boxes: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for n, ann in enumerate(doc.get("annotations", [])):
        where = f"annotations[{n}]"
        bbox = ann.get("bbox") if isinstance(ann, dict) else None
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ItemImportError(file, where, "bbox must be [x, y, width, height]")
        if not _is_id(ann.get("category_id")) or ann["category_id"] not in categories:
            raise ItemImportError(file, where, f"unknown category_id {ann.get('category_id')!r}")
        if not _is_id(ann.get("image_id")):
            raise ItemImportError(file, where, "image_id must be an integer or a string")
        boxes[ann.get("image_id")].append({"label": categories[ann["category_id"]], "bbox": bbox})
    base = path.parent.resolve()
    for n, img in enumerate(doc["images"]):
        where = f"images[{n}]"
        name = img.get("file_name") if isinstance(img, dict) else None
        if not isinstance(name, str) or not name:
            raise ItemImportError(file, where, "file_name is missing")
        if img.get("id") is not None and not _is_id(img.get("id")):
            raise ItemImportError(file, where, "id must be an integer or a string")
        rel = name if (base / name).exists() or not (base / "images" / name).exists() else f"images/{name}"
        media = read_local_image(base, rel, file=file, line=where, max_pixels=max_pixels)
        w, h = float(media.width), float(media.height)
        try:
            value = [
                {"label": b["label"], "x": x / w, "y": y / h, "w": bw / w, "h": bh / h}
                for b in boxes.get(img.get("id"), [])
                for x, y, bw, bh in [(float(v) for v in b["bbox"])]
            ]
        except (TypeError, ValueError) as exc:
            raise ItemImportError(file, where, "a bbox holds a non-number") from exc
        row = ItemRow(key=name, file=file, line=where, media=media)
        row.split = validate_split(img.get("split"), file=file, line=where)
        setattr(row, labels_as, spec.validate(value, file=file, line=where, field="bbox"))
        yield row


def coco_json_in_zip(path: Path, side: dict[str, bytes]) -> str | None:
    """The zip's COCO file (the one .json holding an "images" list), or None for a plain zip of images."""
    found = []
    for name, data in side.items():
        if not name.lower().endswith(".json"):
            continue
        try:
            text = data.decode("utf-8")
            check_json_text(text, max_bytes=len(text))  # a deep document: a RecursionError in json.loads
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, JSONLimitError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("images"), list):
            found.append(name)
    if len(found) > 1:
        raise ItemImportError(path.name, None, f"more than one COCO file in the zip: {', '.join(sorted(found))}")
    return found[0] if found else None


def read_coco_zip(
    path: Path, *, spec: LabelSpec, max_pixels: int, max_zip_bytes: int, labels_as: str
) -> Iterator[ItemRow] | None:
    """Rows of a zip holding a COCO file and its images, or None when the zip holds no COCO file."""
    entries, side = list_images(path, max_zip_bytes=max_zip_bytes)
    name = coco_json_in_zip(path, side)
    if name is None:
        return None
    return _unpacked(path, entries, name, side[name], spec=spec, max_pixels=max_pixels, labels_as=labels_as)


def _unpacked(
    path: Path, entries: list[ImageEntry], name: str, doc: bytes, *, spec: LabelSpec, max_pixels: int, labels_as: str
) -> Iterator[ItemRow]:
    with tempfile.TemporaryDirectory(prefix="alweb-coco-") as tmp:
        root = Path(tmp).resolve()
        for entry in entries:  # member names were checked for traversal when the zip was listed
            target = safe_join(root, entry.name, file=path.name, line=entry.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive_errors(path.name, entry.name):
                target.write_bytes(entry.read())
        json_path = safe_join(root, name, file=path.name, line=name)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(doc)
        yield from read_coco(json_path, spec=spec, max_pixels=max_pixels, labels_as=labels_as)
