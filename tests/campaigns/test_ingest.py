"""Item import through the service and the command: formats, stable splits, idempotence, atomic failures."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from campaigns.ingest.rows import ItemImportError, split_for_key
from campaigns.models import Item
from campaigns.services.items import items_import

pytestmark = pytest.mark.django_db


def png(color: tuple[int, int, int] = (200, 10, 10), size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_import_creates_items_with_labels_metadata_and_stable_splits(text_project: Any, tmp_path: Path) -> None:
    rows = ["key,text,label,ground_truth,lang"] + [f"k{i},text {i},,positive,en" for i in range(200)]
    rows[1] = "k0,text 0,negative,negative,en"
    path = write_csv(tmp_path / "items.csv", "\n".join(rows) + "\n")

    result = items_import(project=text_project, path=path)

    assert (result.rows, result.created, result.unchanged, result.labeled) == (200, 200, 0, 1)
    item = Item.objects.get(project=text_project, key="k0")
    assert (item.text, item.label, item.label_source, item.ground_truth) == ("text 0", "negative", "import", "negative")
    assert item.metadata == {"lang": "en"}
    splits = dict(Item.objects.filter(project=text_project).values_list("key", "split"))
    assert splits == {k: split_for_key(k, text_project.split_ratios) for k in splits}
    assert set(splits.values()) == {"train", "valid", "test", "pool"}


def test_reimport_is_idempotent_and_never_moves_splits(text_project: Any, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", "key,text\n" + "".join(f"k{i},t{i}\n" for i in range(50)))
    items_import(project=text_project, path=first)
    before = dict(Item.objects.values_list("key", "split"))
    # Same keys in another order plus new ones: nothing moves, only the new ones are created.
    second = write_csv(tmp_path / "b.csv", "key,text\n" + "".join(f"k{i},t{i}\n" for i in reversed(range(80))))
    result = items_import(project=text_project, path=second)
    assert (result.created, result.unchanged) == (30, 50)
    after = dict(Item.objects.values_list("key", "split"))
    assert all(after[k] == v for k, v in before.items())
    assert Item.objects.count() == 80


def test_split_is_a_function_of_the_key_and_ratios() -> None:
    ratios = {"train": 0.0, "valid": 0.1, "test": 0.1, "pool": 0.8}
    splits = [split_for_key(f"key-{i}", ratios) for i in range(20_000)]
    assert splits == [split_for_key(f"key-{i}", ratios) for i in range(20_000)]
    assert "train" not in splits
    assert splits.count("pool") / len(splits) == pytest.approx(0.8, abs=0.02)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("key,text,label\na,hello,positive\nb,bye,happy\n", 3, "unknown label 'happy'"),
        ("key,text\na,hello\nb,\n", 3, "no payload"),
        ("key,text\na,hello\nb,bye,extra\n", 3, "more cells than header"),
        ('key,text\na,"unterminated\n', 2, "malformed CSV"),
        ("key,text,text\na,b,c\n", 1, "duplicate column"),
        ("", 1, "empty file"),
    ],
)
def test_bad_csv_row_fails_whole_import_naming_file_line_and_reason(
    text_project: Any, tmp_path: Path, content: str, line: int, reason: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", content)
    with pytest.raises(ItemImportError) as exc:
        items_import(project=text_project, path=path)
    assert exc.value.file == "bad.csv"
    assert exc.value.line == line
    assert reason in str(exc.value)
    assert Item.objects.count() == 0


def test_bad_row_after_a_full_batch_rolls_back_earlier_batches(text_project: Any, tmp_path: Path) -> None:
    body = "".join(f"k{i},t{i},positive\n" for i in range(30)) + "bad,t,unknown\n"
    path = write_csv(tmp_path / "late.csv", "key,text,label\n" + body)
    with pytest.raises(ItemImportError, match=r"late.csv:32: label: unknown label"):
        items_import(project=text_project, path=path, batch_size=10)
    assert Item.objects.count() == 0


def test_bad_encoding_is_reported_with_its_line(text_project: Any, tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("key,text\na,ok\nb,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ItemImportError, match="not valid UTF-8"):
        items_import(project=text_project, path=path)
    assert Item.objects.count() == 0


def test_oversize_field_is_refused(text_project: Any, tmp_path: Path, settings: Any) -> None:
    settings.ALWEB_IMPORT_MAX_FIELD_CHARS = 100
    path = write_csv(tmp_path / "big.csv", "key,text\na," + "x" * 500 + "\n")
    with pytest.raises(ItemImportError, match=r"big.csv:2"):
        items_import(project=text_project, path=path)
    assert Item.objects.count() == 0


def test_jsonl_import_and_wrong_types(text_project: Any, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    lines = [{"key": "a", "text": "hi", "label": "positive", "metadata": {"n": 1}}, {"text": "no key given"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = items_import(project=text_project, path=path)
    assert result.created == 2
    assert Item.objects.get(key="a").metadata == {"n": 1}
    assert Item.objects.filter(key__startswith="sha1:").count() == 1  # derived key: re-import is idempotent
    assert items_import(project=text_project, path=path).created == 0

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "x", "text": "ok"}\n{"key": "y", "text": 5}\n[1]\n')
    with pytest.raises(ItemImportError, match=r"bad.jsonl:2: text: must be a string, got int"):
        items_import(project=text_project, path=bad)
    bad.write_text('{"key": "x", "text": "ok"}\n{not json}\n')
    with pytest.raises(ItemImportError, match=r"bad.jsonl:2: invalid JSON"):
        items_import(project=text_project, path=bad)
    assert Item.objects.count() == 2


def test_csv_with_images_stores_media_and_refuses_traversal(
    image_project: Any, tmp_path: Path, media_root: Path
) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png())
    (tmp_path / "img" / "b.png").write_bytes(png((0, 0, 255)))
    path = write_csv(tmp_path / "items.csv", "image,label\nimg/a.png,cat\nimg/b.png,\nhttps://example.com/c.jpg,dog\n")
    result = items_import(project=image_project, path=path)
    assert (result.created, result.files_stored) == (3, 2)
    a = Item.objects.get(key="img/a.png")
    assert (a.media_width, a.media_height, a.label) == (40, 30, "cat")
    assert (media_root / a.media.name).read_bytes() == png()
    assert Item.objects.get(key="https://example.com/c.jpg").url == "https://example.com/c.jpg"

    (tmp_path / "secret.png").write_bytes(png())
    sub = tmp_path / "sub"
    sub.mkdir()
    evil = write_csv(sub / "evil.csv", "key,image\nx,../secret.png\n")
    with pytest.raises(ItemImportError, match="leaves the import folder"):
        items_import(project=image_project, path=evil)


def test_unreadable_image_fails_and_removes_files_already_stored(
    image_project: Any, tmp_path: Path, media_root: Path
) -> None:
    (tmp_path / "good.png").write_bytes(png())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    path = write_csv(tmp_path / "items.csv", "image\ngood.png\nbroken.png\n")
    with pytest.raises(ItemImportError, match=r"items.csv:3: image: unreadable image"):
        items_import(project=image_project, path=path)
    assert Item.objects.count() == 0
    assert not any(p.is_file() for p in media_root.rglob("*"))


def test_image_folder_with_labels_from_folders(image_project: Any, tmp_path: Path, media_root: Path) -> None:
    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "imgs" / label / f"{i}.png").write_bytes(png((i * 40, 100 if label == "dog" else 0, 0)))
    result = items_import(project=image_project, path=tmp_path / "imgs", label_from_dir=True)
    assert (result.created, result.labeled) == (6, 6)
    # Per-class numbering: the same name under two folders gets the content hash, so each image stays an item.
    item = Item.objects.get(key__startswith="2.png@", label="dog")
    assert item.key == f"2.png@{item.media.name.rsplit('/', 1)[1][:12]}"


def make_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_of_images_imports_and_zip_attacks_are_refused(
    image_project: Any, tmp_path: Path, media_root: Path
) -> None:
    ok = make_zip(tmp_path / "ok.zip", {"cat/a.png": png(), "dog/b.png": png((1, 2, 3))})
    assert items_import(project=image_project, path=ok, label_from_dir=True).created == 2

    traversal = make_zip(tmp_path / "evil.zip", {"a.png": png(), "../../etc/x.png": png()})
    with pytest.raises(ItemImportError, match="path traversal"):
        items_import(project=image_project, path=traversal)

    bomb = make_zip(tmp_path / "bomb.zip", {"a.png": png(), "big.txt": b"\0" * (50 << 20)})
    with pytest.raises(ItemImportError, match="absurd expansion"):
        items_import(project=image_project, path=bomb)
    assert Item.objects.count() == 2


def test_a_zipped_tables_images_stay_inside_the_zip_and_one_table_per_zip(
    image_project: Any, tmp_path: Path, media_root: Path
) -> None:
    outside = make_zip(tmp_path / "out.zip", {"t/data.csv": b"image,label\n../../etc/x.png,cat\n", "t/a.png": png()})
    with pytest.raises(ItemImportError, match="leaves the import folder") as err:
        items_import(project=image_project, path=outside)
    assert err.value.file == "out.zip/t/data.csv" and err.value.line == 2
    missing = make_zip(tmp_path / "missing.zip", {"data.csv": b"image,label\nnope.png,cat\n", "a.png": png()})
    with pytest.raises(ItemImportError, match=r"nope\.png"):
        items_import(project=image_project, path=missing)
    tables = {"a.csv": b"image\na.png\n", "b.jsonl": b'{"image": "a.png"}\n'}
    two = make_zip(tmp_path / "two.zip", {**tables, "a.png": png()})
    with pytest.raises(ItemImportError, match=r"more than one table in the zip \(a.csv, b.jsonl\)"):
        items_import(project=image_project, path=two)
    images_only = make_zip(tmp_path / "img.zip", {"a.png": png()})
    with pytest.raises(ItemImportError, match="format csv was asked for, but the zip holds no table"):
        items_import(project=image_project, path=images_only, fmt="csv")
    assert Item.objects.count() == 0
    assert items_import(project=image_project, path=images_only).created == 1
    # A companion file without a payload column (an ImageFolder's metadata.csv) is no table: the zip is images.
    companion = make_zip(tmp_path / "hf.zip", {"metadata.csv": b"file_name,split\nb.png,train\n", "b.png": png()})
    assert items_import(project=image_project, path=companion).created == 1


def test_yolo_folder_and_tiling_for_detection(detection_project: Any, tmp_path: Path, media_root: Path) -> None:
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "labels").mkdir()
    (tmp_path / "ds" / "images" / "street.png").write_bytes(png(size=(120, 80)))
    # A car in the top-left quarter and a person across the middle.
    (tmp_path / "ds" / "labels" / "street.txt").write_text("0 0.25 0.25 0.2 0.2\n1 0.5 0.75 0.1 0.2\n")
    result = items_import(project=detection_project, path=tmp_path / "ds")
    assert result.created == 1
    boxes = Item.objects.get().label
    assert [b["label"] for b in boxes] == ["car", "person"]
    assert boxes[0]["x"] == pytest.approx(0.15) and boxes[0]["w"] == pytest.approx(0.2)

    Item.objects.all().delete()
    result = items_import(project=detection_project, path=tmp_path / "ds", tile=(2, 2))
    assert result.created == 4
    tiles = {i.key: i for i in Item.objects.all()}
    top_left = tiles["images/street.png#r0c0"]
    assert top_left.source == "images/street.png"
    assert (top_left.media_width, top_left.media_height) == (60, 40)
    assert [b["label"] for b in top_left.label] == ["car"]
    assert top_left.label[0]["x"] == pytest.approx(0.3)
    assert tiles["images/street.png#r0c1"].label == []

    (tmp_path / "ds" / "labels" / "street.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    Item.objects.all().delete()
    with pytest.raises(ItemImportError, match="class index 7 out of range"):
        items_import(project=detection_project, path=tmp_path / "ds")


def test_coco_import_as_ground_truth(detection_project: Any, tmp_path: Path, media_root: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.png").write_bytes(png(size=(100, 50)))
    coco = {
        "images": [{"id": 1, "file_name": "1.png", "width": 100, "height": 50}],
        "annotations": [{"image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]}],
        "categories": [{"id": 3, "name": "person"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    items_import(project=detection_project, path=path, labels_as_ground_truth=True)
    item = Item.objects.get()
    assert item.label is None
    assert item.ground_truth == [{"label": "person", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}]

    coco["categories"] = [{"id": 3, "name": "truck"}]
    path.write_text(json.dumps(coco))
    with pytest.raises(ItemImportError, match="unknown label"):
        items_import(project=detection_project, path=path)


def test_a_zip_of_a_coco_file_and_its_images_imports_like_the_local_coco_file(
    detection_project: Any, tmp_path: Path, media_root: Path
) -> None:
    """An upload is one file: a COCO dataset comes as a zip of its JSON and images (here in images/)."""
    coco = {
        "images": [{"id": 1, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"}],
        "annotations": [{"image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]}],
        "categories": [{"id": 3, "name": "person"}],
    }
    members = {"images/1.png": png(size=(100, 50)), "images/2.png": png(size=(100, 50)), "ann.json": b""}
    members["ann.json"] = json.dumps(coco).encode()
    result = items_import(project=detection_project, path=make_zip(tmp_path / "coco.zip", members))
    assert result.created == 2
    labels = dict(Item.objects.values_list("key", "label"))
    assert labels == {"1.png": [{"label": "person", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}], "2.png": []}

    coco["images"].append({"id": 3, "file_name": "missing.png"})
    members["ann.json"] = json.dumps(coco).encode()
    with pytest.raises(ItemImportError, match=r"ann.json:images\[2\]: image: cannot read image 'missing.png'"):
        items_import(project=detection_project, path=make_zip(tmp_path / "coco2.zip", members))
    assert Item.objects.count() == 2


def test_command_reports_success_and_errors(text_project: Any, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "items.csv", "key,text\na,one\nb,two\n")
    out = io.StringIO()
    call_command("import_items", str(text_project.pk), str(path), stdout=out, stderr=io.StringIO())
    assert "2 new items" in out.getvalue()
    bad = write_csv(tmp_path / "bad.csv", "key,text,label\nc,x,nope\n")
    with pytest.raises(CommandError, match=r"nothing was imported: bad.csv:2: label: unknown label 'nope'"):
        call_command("import_items", text_project.name, str(bad), stdout=out, stderr=io.StringIO())
    # Issue 17 item 10: the summary starts a line of its own after the progress bar, on a shared terminal too.
    shared = io.StringIO()
    call_command("import_items", str(text_project.pk), str(path), stdout=shared, stderr=shared)
    assert "rows/s]\n2 rows: 0 new items, 2 already present" in shared.getvalue()
    with pytest.raises(CommandError, match="no project"):
        call_command("import_items", "nope", str(path))
    with pytest.raises(CommandError, match="--tile"):
        call_command("import_items", text_project.name, str(path), "--tile", "0x4")


def test_image_keys_leave_out_the_label_folder_so_splits_never_depend_on_labels(
    image_project: Any, tmp_path: Path, media_root: Path
) -> None:
    """Issue 16 item 3: the key was the path with the class folder, so the split hash changed with labeling."""
    labeled = make_zip(tmp_path / "labeled.zip", {f"cat/img{i}.png": png((i, 9, 9)) for i in range(20)})
    unlabeled = make_zip(tmp_path / "pool.zip", {f"img{i}.png": png((i, 9, 9)) for i in range(20, 40)})
    items_import(project=image_project, path=unlabeled)
    items_import(project=image_project, path=labeled, label_from_dir=True)
    keys = dict(Item.objects.filter(project=image_project).values_list("key", "split"))
    assert set(keys) == {f"img{i}.png" for i in range(40)}  # no class name in any key
    assert keys == {k: split_for_key(k, image_project.split_ratios) for k in keys}
    # The labeled copy of an unlabeled image is the same item: it gets its label, in the split it already had.
    again = make_zip(tmp_path / "late.zip", {"cat/img25.png": png((25, 9, 9))})
    result = items_import(project=image_project, path=again, label_from_dir=True)
    assert (result.created, result.labeled) == (0, 1)
    assert Item.objects.get(project=image_project, key="img25.png").label == "cat"


def test_a_split_column_is_honoured_and_checked(text_project: Any, tmp_path: Path) -> None:
    """Issue 16 item 1: a team's own split column was moved into metadata and the key hash decided."""
    rows = ["key,text,split"] + [f"v{i},text {i},valid" for i in range(30)] + ["h0,hashed,"]
    result = items_import(project=text_project, path=write_csv(tmp_path / "s.csv", "\n".join(rows) + "\n"))
    assert result.created == 31
    splits = dict(Item.objects.filter(project=text_project).values_list("key", "split"))
    assert {splits[f"v{i}"] for i in range(30)} == {"valid"}
    assert splits["h0"] == split_for_key("h0", text_project.split_ratios)
    assert "split" not in Item.objects.get(key="v0").metadata
    bad = write_csv(tmp_path / "bad.csv", "key,text,split\nx1,a,pool\nx2,b,holdout\n")
    with pytest.raises(ItemImportError) as exc:
        items_import(project=text_project, path=bad)
    assert (exc.value.line, exc.value.field) == (3, "split") and "holdout" in exc.value.reason
    # JSONL too; a re-import naming another split never moves the item: a conflict, reported with its line.
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(json.dumps({"key": "v0", "text": "text 0", "split": "test"}) + "\n")
    moved = items_import(project=text_project, path=jsonl)
    assert (moved.created, moved.conflicts) == (0, 1) and moved.conflict_rows[0]["field"] == "split"
    assert Item.objects.get(key="v0").split == "valid"


def test_reimported_labels_apply_to_unlabeled_items_and_conflicts_are_reported(
    text_project: Any, tmp_path: Path
) -> None:
    """Issue 16 item 2: a re-import with labels said "labeled: 2" and applied none."""
    items_import(
        project=text_project, path=write_csv(tmp_path / "a.csv", "key,text,label\nk1,a,\nk2,b,\nk3,c,negative\n")
    )
    again = write_csv(tmp_path / "b.csv", "key,text,label\nk1,a,positive\nk2,b,\nk3,c,positive\nk4,d,neutral\n")
    result = items_import(project=text_project, path=again)
    assert (result.rows, result.created, result.labeled, result.unchanged, result.conflicts) == (4, 1, 2, 2, 1)
    assert result.conflict_rows == [
        {
            "file": "b.csv",
            "line": 4,
            "key": "k3",
            "field": "label",
            "reason": "the item is labeled 'negative' already (not changed)",
        }
    ]
    labels = dict(Item.objects.filter(project=text_project).values_list("key", "label"))
    assert labels == {"k1": "positive", "k2": None, "k3": "negative", "k4": "neutral"}
    assert Item.objects.get(key="k1").label_source == "import"
