"""Scan a folder of images: size, mode, checksum, and a full decode of every file.

Public API:

- ``scan_images(folder, recursive=True, workers=1, progress=None, strict=False)
  -> ImageScan``: one row per image file (``.jpg``, ``.jpeg``, ``.png``, ``.webp``, any
  case; hidden files skipped), sorted by relative path, in ``ImageScan.table``
  (``IMAGE_FILES_SCHEMA``).
  Files that fail to decode fully (corrupt, truncated, empty) are left out of the table
  and reported in ``ImageScan.errors`` as ``InputError`` naming the file (``strict``:
  raised together as ``InputErrors`` instead). The table has no ``image_root`` column:
  the scanned folder is ``ImageScan.root``.
- ``inspect_image(path, root) -> dict``: the row of one file (raises ``InputError``).
- ``find_missing_images(image_ids, scan) -> list[InputError]``: annotated images that
  have no file in the scanned folder.

``ImageScan.warnings`` notes files whose EXIF orientation rotates the stored pixels
(box fractions refer to the stored width and height).
"""

from __future__ import annotations

import hashlib
import io
import warnings as _warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image, ImageFile

from ssl_wc.data.errors import InputError, InputErrors

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})

IMAGE_FILES_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("sha256", pa.string()), ("bytes", pa.int64()),
    ("mode", pa.string())])

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageScan:
    """Result of ``scan_images``: the readable files, and one error per unreadable file."""

    root: Path
    table: pa.Table
    errors: tuple[InputError, ...] = ()
    warnings: tuple[InputError, ...] = ()

    @property
    def n_files(self) -> int:
        return self.table.num_rows

    @property
    def image_ids(self) -> frozenset[str]:
        return frozenset(self.table.column("image_id").to_pylist())


def _is_image(path: Path) -> bool:
    return (path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
            and not path.name.startswith("."))


def list_image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` sorted by relative path (hidden files skipped)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in found if _is_image(p)
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def inspect_image(path: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Read, hash and fully decode one image; its table row, or ``InputError``.

    ``root`` (default: the file's folder) is what the row's ``path`` is relative to.
    """
    return _inspect(Path(path), root)[0]


def _inspect(path: Path, root: str | Path | None) -> tuple[dict[str, Any], int | None]:
    root_p = Path(root) if root is not None else path.parent
    rel = path.relative_to(root_p).as_posix()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, path.name, f"cannot read: {e.strerror or e}",
                         image_id=path.name) from None
    if not data:
        raise InputError(path, path.name, "empty file", image_id=path.name)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # decode every pixel: catches truncated and corrupt files
                width, height, mode = img.size[0], img.size[1], img.mode
                orientation = img.getexif().get(_EXIF_ORIENTATION)
    except Image.UnidentifiedImageError:
        raise InputError(path, path.name, "cannot decode: not a recognised image format",
                         image_id=path.name) from None
    except Exception as e:  # PIL raises many types for bad files; all mean "unreadable"
        reason = str(e) or type(e).__name__
        if "truncated" in reason.lower():
            reason = f"truncated image ({reason})"
        raise InputError(path, path.name, f"cannot decode: {reason}", image_id=path.name) \
            from None
    return {"image_id": path.name, "path": rel, "width": width, "height": height,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "mode": mode}, orientation


def scan_images(folder: str | Path, recursive: bool = True, workers: int = 1,
                progress: Callable[[int, int], None] | None = None,
                strict: bool = False) -> ImageScan:
    """Scan ``folder``; ``progress(done, total)`` is called after each file.

    Decoding uses ``workers`` threads. Truncated files are always refused: PIL's global
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is switched off for the duration of the scan.
    Raises ``InputError`` when ``folder`` is not a folder, and ``InputErrors`` listing
    every unreadable file when ``strict``.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise InputError(folder, "folder", "image folder not found")
    files = list_image_files(root, recursive)
    rows: list[tuple[dict[str, Any], int | None]] = []
    errors: list[InputError] = []
    warns: list[InputError] = []

    def one(p: Path) -> tuple[dict[str, Any], int | None] | InputError:
        try:
            return _inspect(p, root)
        except InputError as e:
            return e

    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for done, result in enumerate(pool.map(one, files), start=1):
                if isinstance(result, InputError):
                    errors.append(result)
                else:
                    rows.append(result)
                if progress is not None:
                    progress(done, len(files))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved

    by_id: dict[str, str] = {}
    unique: list[dict[str, Any]] = []
    for row, orientation in rows:
        first = by_id.setdefault(row["image_id"], row["path"])
        if first != row["path"]:
            errors.append(InputError(root / row["path"], row["image_id"],
                                     f"same file name as {first}: image ids must be unique",
                                     image_id=row["image_id"]))
            continue
        if orientation not in (None, 1):
            warns.append(InputError(root / row["path"], row["image_id"],
                                    f"EXIF orientation {orientation}: stored pixels "
                                    "are rotated relative to how viewers show the image",
                                    image_id=row["image_id"]))
        unique.append(row)
    if strict and errors:
        raise InputErrors(errors, note="image scan refused")
    table = pa.table({name: [r[name] for r in unique] for name in IMAGE_FILES_SCHEMA.names},
                     schema=IMAGE_FILES_SCHEMA)
    return ImageScan(root, table, tuple(errors), tuple(warns))


def find_missing_images(image_ids: Iterable[str], scan: ImageScan) -> list[InputError]:
    """One error per id in ``image_ids`` with no readable file in ``scan``."""
    have = scan.image_ids
    unreadable = {e.image_id for e in scan.errors}
    by_lower: dict[str, str] = {i.lower(): i for i in have}
    out: list[InputError] = []
    for image_id in dict.fromkeys(image_ids):
        if image_id in have:
            continue
        if image_id in unreadable:
            reason = "annotated image file is unreadable (see the scan errors)"
        elif image_id.lower() in by_lower:
            reason = f"annotated image has no file; {by_lower[image_id.lower()]} differs in case"
        else:
            reason = "annotated image has no file"
        out.append(InputError(scan.root, image_id, reason, image_id=image_id))
    return out
