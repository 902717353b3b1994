"""Dataset export: every format round-trips through the importers (same items, splits and labels), rows carry the
item's history, nothing labeled is an empty file with its header, bad requests name their field."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from campaigns.models import Item
from campaigns.services.exports import export_extension, project_export
from campaigns.services.items import items_import
from tests.factories import AnnotationFactory, CycleFactory, ScoreFactory, SelectedItemFactory, SelectionFactory

pytestmark = pytest.mark.django_db

RATIOS = {"train": 0.3, "valid": 0.2, "test": 0.2, "pool": 0.3}


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def dataset(project: Any) -> dict[str, tuple[str, Any]]:
    return {i.key: (i.split, i.label) for i in Item.objects.filter(project=project, label__isnull=False)}


def same(a: dict[str, tuple[str, Any]], b: dict[str, tuple[str, Any]]) -> bool:
    """Equal, boxes up to float rounding (COCO is in pixels, YOLO in centres: converting back is not bit-exact)."""
    if a.keys() != b.keys():
        return False
    for key, (split, label) in a.items():
        other_split, other = b[key]
        if split != other_split:
            return False
        if isinstance(label, list):
            if len(label) != len(other) or any(
                x["label"] != y["label"] or not all(math.isclose(x[c], y[c], abs_tol=1e-9) for c in "xywh")
                for x, y in zip(label, other, strict=True)
            ):
                return False
        elif label != other:
            return False
    return True


@pytest.fixture
def text_source(make_project: Any, tmp_path: Path) -> Any:
    project = make_project(split_ratios=RATIOS)
    lines = ["key,text,label"] + [f"k{i:02d},text {i}, {'positive' if i % 3 else 'negative'}" for i in range(30)]
    lines = [line.replace(", ", ",") for line in lines]
    lines += [f"u{i},unlabeled {i}," for i in range(5)]
    (tmp_path / "src.csv").write_text("\n".join(lines) + "\n")
    items_import(project=project, path=tmp_path / "src.csv")
    return project


@pytest.fixture
def image_source(make_project: Any, tmp_path: Path) -> Any:
    project = make_project(task_type="image_classification", labels=["cat", "dog"], split_ratios=RATIOS)
    path = tmp_path / "src.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(12):
            zf.writestr(f"{'cat' if i % 2 else 'dog'}/img{i}.png", png((i * 20, 10, 10)))
    items_import(project=project, path=path, label_from_dir=True)
    return project


@pytest.fixture
def detection_source(make_project: Any, tmp_path: Path) -> Any:
    project = make_project(task_type="object_detection", labels=["car", "person"], split_ratios=RATIOS)
    folder = tmp_path / "coco-src"
    folder.mkdir()
    images, annotations = [], []
    for i in range(10):
        (folder / f"photo{i}.png").write_bytes(png((10, i * 20, 10)))
        images.append({"id": i + 1, "file_name": f"photo{i}.png", "width": 40, "height": 30})
        for n in range(i % 3):  # 0, 1 or 2 boxes: an image with none is labeled "no object"
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1 + n, "bbox": [4, 3, 8, 6]}
            )
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    }
    (folder / "coco.json").write_text(json.dumps(doc))
    items_import(project=project, path=folder / "coco.json")
    return project


def roundtrip(
    source: Any, fmt: str, tmp_path: Path, make_project: Any, ratios: dict[str, float] | None = None, **options: Any
) -> Any:
    """Export `source`, import the file into a new project with the same settings (or other split ratios), return
    the new project."""
    ext = export_extension(fmt=fmt, include_media=options.get("include_media", False) or fmt == "imagefolder")
    out = tmp_path / f"export-{fmt}{ext}"
    project_export(project=source, out=out, fmt=fmt, **options)
    ratios = ratios or source.split_ratios
    target = make_project(task_type=source.task_type, labels=source.labels, split_ratios=ratios)
    path, import_options = out, {}
    if ext == ".zip" and fmt in ("csv", "jsonl", "parquet"):
        folder = tmp_path / f"unpacked-{fmt}"
        zipfile.ZipFile(out).extractall(folder)
        path = folder / f"items.{fmt}"
    if fmt == "imagefolder":
        import_options["label_from_dir"] = True
    items_import(project=target, path=path, **import_options)
    return target


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_text_export_round_trips(text_source: Any, fmt: str, tmp_path: Path, make_project: Any) -> None:
    target = roundtrip(text_source, fmt, tmp_path, make_project)
    assert len(dataset(text_source)) == 30
    assert dataset(target) == dataset(text_source)


ALL_POOL = {"train": 0.0, "valid": 0.0, "test": 0.0, "pool": 1.0}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_splits_travel_with_the_file_not_the_ratios(
    text_source: Any, fmt: str, tmp_path: Path, make_project: Any
) -> None:
    """The importers read the `split` column: a project with other ratios still gets the source's splits."""
    target = roundtrip(text_source, fmt, tmp_path, make_project, ratios=ALL_POOL)
    assert {split for split, _ in dataset(text_source).values()} == {"train", "valid", "test", "pool"}
    assert dataset(target) == dataset(text_source)


def test_coco_images_carry_their_split(detection_source: Any, tmp_path: Path, make_project: Any) -> None:
    target = roundtrip(detection_source, "coco", tmp_path, make_project, ratios=ALL_POOL, include_media=True)
    assert same(dataset(target), dataset(detection_source))


def test_unlabeled_items_go_out_when_asked(text_source: Any, tmp_path: Path, make_project: Any) -> None:
    target = roundtrip(text_source, "csv", tmp_path, make_project, include_unlabeled=True)
    keys = set(Item.objects.filter(project=text_source).values_list("key", "split"))
    assert set(Item.objects.filter(project=target).values_list("key", "split")) == keys


@pytest.mark.parametrize(("fmt", "media"), [("csv", True), ("jsonl", True), ("parquet", True), ("imagefolder", True)])
def test_image_export_round_trips(image_source: Any, fmt: str, media: bool, tmp_path: Path, make_project: Any) -> None:
    target = roundtrip(image_source, fmt, tmp_path, make_project, include_media=media)
    assert len(dataset(image_source)) == 12
    assert dataset(target) == dataset(image_source)
    # The same bytes came back: media are content-addressed, so the same file name means the same content.
    assert sorted(i.media.name.rsplit("/", 1)[1] for i in Item.objects.filter(project=target)) == sorted(
        i.media.name.rsplit("/", 1)[1] for i in Item.objects.filter(project=image_source)
    )


@pytest.mark.parametrize("fmt", ["coco", "yolo", "csv", "jsonl", "parquet"])
def test_detection_export_round_trips(detection_source: Any, fmt: str, tmp_path: Path, make_project: Any) -> None:
    target = roundtrip(detection_source, fmt, tmp_path, make_project, include_media=True)
    source = dataset(detection_source)
    assert len(source) == 10 and sum(len(label) for _, label in source.values()) == 9
    assert same(dataset(target), source)


def test_rows_carry_annotators_agreement_selection_and_prediction(text_source: Any, tmp_path: Path) -> None:
    item = Item.objects.get(project=text_source, key="k01")  # labeled positive
    for name, value in (("ann", "positive"), ("bob", "positive"), ("cy", "negative")):
        AnnotationFactory(item=item, annotator=name, value=value)
    AnnotationFactory(item=item, annotator="gone", value="negative", deleted_at="2026-01-01T00:00:00Z")
    cycle = CycleFactory(project=text_source, number=1)
    SelectedItemFactory(selection=SelectionFactory(cycle=cycle), item=item, uncertainty=0.75)
    ScoreFactory(cycle=cycle, item=item, predicted_label="negative", confidence=0.6)
    later = CycleFactory(project=text_source, number=2)
    ScoreFactory(cycle=later, item=item, predicted_label="positive", confidence=0.9)
    out = tmp_path / "e.parquet"

    project_export(project=text_source, out=out, fmt="parquet")

    rows = {r["key"]: r for r in pq.read_table(out).to_pylist()}
    row = rows["k01"]
    assert row["annotators"] == ["ann", "bob", "cy"]
    assert row["agreement"] == pytest.approx(2 / 3)  # the deleted annotation does not count
    assert (row["selected_cycle"], row["selection_score"]) == (1, 0.75)
    assert (row["predicted_label"], row["confidence"]) == ("positive", 0.9)  # the latest cycle's
    assert row["label_source"] == "import"
    assert rows["k02"]["annotators"] == [] and rows["k02"]["agreement"] is None


@pytest.mark.parametrize(
    ("fmt", "task_type", "check"),
    [
        (
            "csv",
            "text_classification",
            lambda p: (
                p.read_text().splitlines()
                == [
                    "key,split,text,image,url,label,"
                    "label_source,annotators,agreement,selected_cycle,selection_score,predicted_label,confidence,source"
                ]
            ),
        ),
        ("jsonl", "text_classification", lambda p: p.read_text() == ""),
        (
            "parquet",
            "text_classification",
            lambda p: pq.read_table(p).num_rows == 0 and "label" in pq.read_schema(p).names,
        ),
        ("coco", "object_detection", lambda p: json.loads(p.read_text())["images"] == []),
        ("yolo", "object_detection", lambda p: "data.yaml" in zipfile.ZipFile(p).namelist()),
        (
            "imagefolder",
            "image_classification",
            lambda p: zipfile.ZipFile(p).read("metadata.csv").startswith(b"file_name"),
        ),
    ],
)
def test_nothing_labeled_is_an_empty_file_with_its_header(
    make_project: Any, tmp_path: Path, fmt: str, task_type: str, check: Any
) -> None:
    project = make_project(task_type=task_type, labels=["car", "person"])
    Item.objects.create(project=project, key="a.png", split="pool", url="https://example.com/a.png")
    out = tmp_path / f"empty{export_extension(fmt=fmt, include_media=fmt == 'imagefolder')}"
    outcome = project_export(project=project, out=out, fmt=fmt)
    assert outcome.rows == 0
    assert check(out)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"fmt": "xlsx"}, "format"),
        ({"fmt": "coco"}, "format"),  # a text project has no boxes
        ({"fmt": "csv", "as_of_cycle": 7}, "as_of_cycle"),
        ({"fmt": "csv", "include_media": True}, "include_media"),
    ],
)
def test_bad_requests_name_their_field(text_source: Any, tmp_path: Path, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        project_export(project=text_source, out=tmp_path / "x", **options)
    assert field in caught.value.message_dict


def test_csv_columns_are_the_importers(text_source: Any, tmp_path: Path) -> None:
    out = tmp_path / "e.csv"
    project_export(project=text_source, out=out, fmt="csv", page_size=7)  # several pages
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 30 and len({r["key"] for r in rows}) == 30
    assert {r["label"] for r in rows} == {"positive", "negative"}


def test_pages_skip_other_projects_ids(make_project: Any, tmp_path: Path) -> None:
    """Ids interleaved with another project's, with long stretches of them: every item once, in id order."""
    mine, other = make_project(), make_project()
    keys = []
    for i in range(40):
        Item.objects.bulk_create(Item(project=other, key=f"o{i}-{n}", split="pool", text="x") for n in range(i % 7 * 3))
        item = Item.objects.create(project=mine, key=f"m{i:02d}", split="train", text="t", label="positive")
        AnnotationFactory(item=item, annotator=f"a{i}", value="positive")
        keys.append(item.key)
    out = tmp_path / "e.parquet"
    outcome = project_export(project=mine, out=out, fmt="parquet", page_size=4)
    rows = pq.read_table(out).to_pylist()
    assert outcome.rows == 40 and [r["key"] for r in rows] == keys
    assert [r["annotators"] for r in rows] == [[f"a{i}"] for i in range(40)]
