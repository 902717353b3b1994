"""Export writers for the image formats: COCO and YOLO (detection), ImageFolder (image classification).

Images are named in the archive by their key when it is a safe relative path (`safe_archive_name`), so importing
the archive back gives the same keys. Each writer streams: COCO writes its `images` list as rows come and spills
its `annotations` to a side file appended at the end; YOLO and ImageFolder add one file per item to the zip.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from campaigns.selectors.exports import ExportRow
from campaigns.services.export_writers import Bundle, history_fields, safe_archive_name

# A COCO or YOLO file names each image; an item given by URL (never stored) keeps its URL as its name.
COCO_FILE = "annotations.json"


def _image_name(row: ExportRow) -> str:
    return safe_archive_name(row.key, row.media) if row.media else row.key


class CocoWriter:
    """COCO detection: boxes in pixels (alweb stores fractions of the image), `split` on each image (the importer
    reads it back), alweb's extra fields under `alweb` on each image. Plain JSON without media; a zip of the JSON
    and the images with them."""

    def __init__(self, bundle: Bundle, *, include_media: bool, labels: Sequence[str]) -> None:
        self.bundle, self.include_media, self.labels = bundle, include_media, list(labels)
        self.json_path = bundle.path.with_name(bundle.path.name + ".json") if bundle.archive else bundle.path
        self.spill_path = bundle.path.with_name(bundle.path.name + ".annotations")
        self._fh: IO[str] = self.json_path.open("w", encoding="utf-8")
        self._spill: IO[str] = self.spill_path.open("w+", encoding="utf-8")
        self._fh.write('{"images": [')
        self._images = self._annotations = 0

    def write(self, rows: Sequence[ExportRow]) -> None:
        for row in rows:
            name = _image_name(row)
            if self.include_media and row.media:
                self.bundle.add_media(row.media, name)
            self._images += 1
            image = {
                "id": self._images,
                "file_name": name,
                "width": row.width,
                "height": row.height,
                "split": row.split,
                "alweb": _extras(row),
            }
            if row.url:
                image["coco_url"] = row.url
            self._fh.write(("" if self._images == 1 else ", ") + json.dumps(image, ensure_ascii=False))
            for box in row.label or []:
                self._annotations += 1
                self._spill.write(json.dumps(self._annotation(box, row, self._images)) + "\n")

    def _annotation(self, box: dict[str, Any], row: ExportRow, image_id: int) -> dict[str, Any]:
        w, h = float(row.width or 1), float(row.height or 1)  # no size known (a URL): fractions stay fractions
        bbox = [box["x"] * w, box["y"] * h, box["w"] * w, box["h"] * h]
        return {
            "id": self._annotations,
            "image_id": image_id,
            "category_id": self.labels.index(box["label"]) + 1,
            "bbox": bbox,
            "area": bbox[2] * bbox[3],
            "iscrowd": 0,
        }

    def close(self) -> None:
        self._fh.write('], "annotations": [')
        self._spill.seek(0)
        for n, line in enumerate(self._spill):
            self._fh.write(("" if n == 0 else ", ") + line.rstrip("\n"))
        self._spill.close()
        Path(self.spill_path).unlink()
        categories = [{"id": n + 1, "name": label} for n, label in enumerate(self.labels)]
        self._fh.write('], "categories": ' + json.dumps(categories) + "}")
        self._fh.close()
        if self.bundle.archive is not None:
            self.bundle.add_file(self.json_path, COCO_FILE)
            self.json_path.unlink()
        self.bundle.close()


def _extras(row: ExportRow) -> dict[str, Any]:
    return {"key": row.key, **history_fields(row)}


class YoloWriter:
    """Ultralytics YOLO: `<image>.txt` beside each image (`class cx cy w h`, normalised), `train.txt`, `valid.txt`,
    `test.txt` listing the images of each split (pool items train, as in alweb), and `data.yaml` naming the classes.
    Labels beside images (no images/ and labels/ folders) is a layout Ultralytics reads and alweb's importer too:
    the image path is the item's key. An unlabeled item has no .txt (an empty .txt is "labeled: no object")."""

    LISTS = {"train": "train.txt", "pool": "train.txt", "valid": "valid.txt", "test": "test.txt"}

    def __init__(self, bundle: Bundle, *, include_media: bool, labels: Sequence[str]) -> None:
        self.bundle, self.include_media, self.labels = bundle, include_media, list(labels)
        self._lists: dict[str, IO[str]] = {}
        self._extras = io.StringIO()
        self._extras_csv = csv.writer(self._extras)
        self._extras_csv.writerow(["file_name", "key", "split", "label_source", "annotators", "agreement"])

    def _list(self, split: str) -> IO[str]:
        name = self.LISTS.get(split, "train.txt")
        if name not in self._lists:
            self._lists[name] = self.bundle.path.with_name(f"{self.bundle.path.name}.{name}").open("w")
        return self._lists[name]

    def write(self, rows: Sequence[ExportRow]) -> None:
        for row in rows:
            name = _image_name(row)
            if self.include_media and row.media:
                self.bundle.add_media(row.media, name)
            if row.label is not None:
                lines = [
                    f"{self.labels.index(b['label'])} {b['x'] + b['w'] / 2!r} {b['y'] + b['h'] / 2!r} "
                    f"{b['w']!r} {b['h']!r}\n"
                    for b in row.label
                ]
                self.bundle.add_text("".join(lines), str(Path(name).with_suffix(".txt")))
            self._list(row.split).write(f"./{name}\n")
            annotators = ";".join(row.annotators)
            self._extras_csv.writerow([name, row.key, row.split, row.label_source, annotators, row.agreement])

    def close(self) -> None:
        for name, fh in self._lists.items():
            fh.close()
            path = Path(fh.name)
            self.bundle.add_file(path, name)
            path.unlink()
        names = "\n".join(f"  {n}: {json.dumps(label)}" for n, label in enumerate(self.labels))
        splits = "".join(f"{s}: {f}\n" for s, f in (("train", "train.txt"), ("val", "valid.txt"), ("test", "test.txt")))
        self.bundle.add_text(f"path: .\n{splits}names:\n{names}\n", "data.yaml")
        self.bundle.add_text(self._extras.getvalue(), "alweb_items.csv")
        self.bundle.close()


METADATA_COLUMNS = (
    *("file_name", "key", "split", "label", "label_source", "annotators", "agreement", "url"),
    *("selected_cycle", "selection_score", "predicted_label", "confidence"),
)


class ImageFolderWriter:
    """Hugging Face ImageFolder: `<label>/<image>` for labeled items (unlabeled ones at the top), and a
    `metadata.csv` whose `file_name` column names each image, with the split and alweb's columns. alweb imports it
    back with "labels from folders" (the folder is the label, the rest of the path the key)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.meta_path = bundle.path.with_name(bundle.path.name + ".metadata.csv")
        self._fh: IO[str] = self.meta_path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(METADATA_COLUMNS)

    def write(self, rows: Sequence[ExportRow]) -> None:
        for row in rows:
            name = ""
            if row.media:  # an image given by URL was never stored: listed in metadata.csv only
                base = safe_archive_name(row.key, row.media)
                name = self.bundle.add_media(row.media, f"{row.label}/{base}" if row.label is not None else base)
            self._csv.writerow(
                [
                    *(name, row.key, row.split, row.label or "", row.label_source, ";".join(row.annotators)),
                    *(_blank(row.agreement), row.url, _blank(row.selected_cycle), _blank(row.selection_score)),
                    *(row.predicted_label, _blank(row.confidence)),
                ]
            )

    def close(self) -> None:
        self._fh.close()
        self.bundle.add_file(self.meta_path, "metadata.csv")
        self.meta_path.unlink()
        self.bundle.close()


def _blank(value: Any) -> Any:
    return "" if value is None else value
