"""Image sources: local files, a folder or zip of images (optionally with YOLO labels or a COCO file), tiling.

Paths from import files are untrusted: each must stay inside the import's base folder; zip members are checked
for traversal, count, total size and compression ratio before anything is read.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from .rows import ItemImportError, ItemRow, LabelSpec, Media

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
MAX_ZIP_ENTRIES = 1_000_000
MAX_ZIP_RATIO = 200  # a member expanding more than 200x is a zip bomb, not an image


def decode_image(data: bytes, *, file: str, line: int | str, max_pixels: int, name: str = "") -> Media:
    """Check the bytes are a readable image of sane size; return them with their format and size."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ItemImportError(file, line, f"image {name} too large ({width}x{height} pixels)", "image")
            fmt = (img.format or "").lower()
            img.verify()
        # verify() checks the structure without decoding: a truncated JPEG body passes it and would fail only in
        # training. Decoding once here (pixels were bounded above) refuses it at import, with its line.
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except ItemImportError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ItemImportError(file, line, f"unreadable image {name}: {exc}", "image") from exc
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt) or "bin"
    return Media(data=data, extension=ext, width=width, height=height)


def safe_join(base: Path, relative: str, *, file: str, line: int | str) -> Path:
    """`base/relative`, refusing absolute paths and any path that resolves outside `base`."""
    if not relative or PurePosixPath(relative).is_absolute() or Path(relative).is_absolute():
        raise ItemImportError(file, line, f"path {relative!r} must be relative to the import file", "image")
    if "\x00" in relative:
        raise ItemImportError(file, line, "path contains a NUL character", "image")
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise ItemImportError(file, line, f"path {relative!r} leaves the import folder", "image")
    return target


def read_local_image(base: Path, relative: str, *, file: str, line: int | str, max_pixels: int) -> Media:
    path = safe_join(base, relative, file=file, line=line)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ItemImportError(file, line, f"cannot read image {relative!r}: {exc.strerror}", "image") from exc
    return decode_image(data, file=file, line=line, max_pixels=max_pixels, name=repr(relative))


@dataclass(slots=True)
class ImageEntry:
    """One image in a folder or zip, by its path relative to the root (posix), with a reader for its bytes."""

    name: str
    archive: zipfile.ZipFile | None
    root: Path | None

    def read(self) -> bytes:
        if self.archive is not None:
            return self.archive.read(self.name)
        assert self.root is not None
        return (self.root / self.name).read_bytes()


def _check_zip(archive: zipfile.ZipFile, file: str, max_bytes: int) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise ItemImportError(file, None, f"zip has {len(infos)} entries (limit {MAX_ZIP_ENTRIES})")
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ItemImportError(file, name, "path traversal in zip member name")
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO and info.file_size > 1 << 20:
            raise ItemImportError(file, name, f"absurd expansion ratio ({info.file_size // info.compress_size}x)")
    if total > max_bytes:
        raise ItemImportError(file, None, f"zip expands to {total} bytes (limit {max_bytes})")
    return infos


@contextlib.contextmanager
def archive_errors(file: str, entry: str | None) -> Iterator[None]:
    """A damaged zip (bad CRC, truncated, encrypted, an unsupported compression) or an unreadable file in a folder
    is a bad import, named with its entry, not a server error."""
    try:
        yield
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, OSError) as exc:
        raise ItemImportError(file, entry, f"{f'cannot read {entry}' if entry else 'damaged zip'}: {exc}") from exc
    except zlib.error as exc:
        raise ItemImportError(file, entry, f"cannot read {entry}: corrupt compressed data ({exc})") from exc


def list_images(path: Path, *, max_zip_bytes: int) -> tuple[list[ImageEntry], dict[str, bytes]]:
    """Images in a folder or zip (sorted, for a stable order), plus small side files (labels, COCO JSON)."""
    entries: list[ImageEntry] = []
    side: dict[str, bytes] = {}
    if zipfile.is_zipfile(path):
        with archive_errors(path.name, None):
            archive = zipfile.ZipFile(path)
        for info in sorted(_check_zip(archive, path.name, max_zip_bytes), key=lambda i: i.filename):
            if info.is_dir() or "__MACOSX" in info.filename:
                continue
            suffix = PurePosixPath(info.filename).suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                entries.append(ImageEntry(info.filename, archive, None))
            elif suffix in {".txt", ".json", ".yaml", ".yml"}:
                with archive_errors(path.name, info.filename):
                    side[info.filename] = archive.read(info.filename)
        return entries, side
    root = path.resolve()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or not p.resolve().is_relative_to(root):
            continue  # symlinks out of the folder are ignored, never followed
        rel = p.relative_to(root).as_posix()
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            entries.append(ImageEntry(rel, None, root))
        elif p.suffix.lower() in {".txt", ".json", ".yaml", ".yml"}:
            side[rel] = p.read_bytes()
    return entries, side


def yolo_boxes(text: str, classes: tuple[str, ...], *, file: str) -> list[dict[str, object]]:
    """YOLO txt (`class cx cy w h`, normalised) to alweb boxes (top-left x, y, w, h, normalised)."""
    boxes = []
    for n, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ItemImportError(file, n, "YOLO line must be 'class cx cy w h'")
        try:
            cls = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError as exc:
            raise ItemImportError(file, n, f"YOLO line has a non-number: {raw!r}") from exc
        if not 0 <= cls < len(classes):
            raise ItemImportError(file, n, f"class index {cls} out of range (project has {len(classes)} labels)")
        x, y = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
        boxes.append({"label": classes[cls], "x": x, "y": y, "w": min(w, 1 - x), "h": min(h, 1 - y)})
    return boxes


def _yolo_label_name(image_name: str) -> list[str]:
    p = PurePosixPath(image_name)
    candidates = [str(p.with_suffix(".txt"))]
    parts = list(p.parts)
    if "images" in parts:
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
        candidates.append(str(PurePosixPath(*parts).with_suffix(".txt")))
    return candidates


def read_image_collection(
    path: Path,
    *,
    spec: LabelSpec,
    max_pixels: int,
    max_zip_bytes: int,
    label_from_dir: bool,
    labels_as: str,
) -> Iterator[ItemRow]:
    """A folder or zip of images. Labels come from YOLO txt files (detection) or the first folder name, which is
    then left out of the item's key (`cat/img1.png` is the item `img1.png`, labeled cat)."""
    entries, side = list_images(path, max_zip_bytes=max_zip_bytes)
    file = path.name
    if not entries:
        raise ItemImportError(file, None, "no images found")
    by_folder = not spec.is_detection and label_from_dir

    def key_of(name: str) -> str:
        return name.split("/", 1)[1] if by_folder and "/" in name else name

    # Per-class numbering (cat/0.png, dog/0.png) is common: such names get the image's content hash added, so
    # each stays its own item (and the same file under two labels is one item with a label conflict).
    shared = Counter(key_of(e.name) for e in entries)
    for entry in entries:
        with archive_errors(file, entry.name):
            data = entry.read()
        media = decode_image(data, file=file, line=entry.name, max_pixels=max_pixels, name=entry.name)
        value = None
        if spec.is_detection:
            for cand in _yolo_label_name(entry.name):
                if cand in side:
                    try:
                        text = side[cand].decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise ItemImportError(f"{file}/{cand}", None, f"not valid UTF-8 ({exc.reason})") from exc
                    boxes = yolo_boxes(text, spec.labels, file=f"{file}/{cand}")
                    value = spec.validate(boxes, file=file, line=entry.name, field="label")
                    break
        # The key names the image, never its label: the label folder is not part of it, so a labeled and an
        # unlabeled copy of one file get one key, and the split (a hash of the key) cannot depend on the label.
        key = key_of(entry.name)
        if by_folder and "/" in entry.name:
            value = spec.validate(entry.name.split("/", 1)[0], file=file, line=entry.name, field="label")
        if shared[key] > 1:
            key = f"{key}@{media.digest[:12]}"
        row = ItemRow(key=key, file=file, line=entry.name, media=media)
        setattr(row, labels_as, value)
        yield row
