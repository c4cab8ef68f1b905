"""Scan a folder of images: size, mode, checksum, and a full decode of every file.

Public API:

- ``scan_images(folder, recursive=True, workers=1, progress=None, strict=False,
  limits=ImageLimits()) -> ImageScan``: one row per image file (``.jpg``, ``.jpeg``,
  ``.png``, ``.webp``, any case; hidden files skipped), sorted by relative path, in
  ``ImageScan.table`` (``IMAGE_FILES_SCHEMA``).
  Files that fail to decode fully (corrupt, truncated, empty, a PNG whose pixel data
  ends before its last row), that exceed the byte or pixel limit (checked before the
  pixels are decoded, so a huge file never fills the memory), or whose name is not
  valid UTF-8 are left out of the table and reported in ``ImageScan.errors`` as
  ``InputError`` naming the file (``strict``: raised together as ``InputErrors``
  instead). The table has no ``image_root`` column: the scanned folder is
  ``ImageScan.root``.
- ``inspect_image(path, root, limits) -> dict``: the row of one file (raises
  ``InputError``).
- ``find_missing_images(image_ids, scan) -> list[InputError]``: annotated images that
  have no file in the scanned folder.

``ImageScan.warnings`` notes files whose EXIF orientation rotates the stored pixels
(box fractions refer to the stored width and height).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings as _warnings
import zlib
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
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> samples per pixel
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted: file size in bytes and width x height in pixels.

    Checked before the pixels are decoded (the size from the file system, the pixel
    count from the header), so an oversized file is refused without being read.
    ``ssl-wc ingest images --max-image-mb / --max-image-megapixels`` raise them.
    """

    max_bytes: int = 100 * 2**20
    max_pixels: int = 100_000_000

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("image limits must be positive")


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as printable UTF-8 text (bytes that are not UTF-8 shown as ``\\xff``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _utf8_name(path: Path) -> bool:
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def inspect_image(path: str | Path, root: str | Path | None = None,
                  limits: ImageLimits | None = None) -> dict[str, Any]:
    """Read, hash and fully decode one image; its table row, or ``InputError``.

    ``root`` (default: the file's folder) is what the row's ``path`` is relative to.
    """
    return _inspect(Path(path), root, limits or ImageLimits())[0]


def _inspect(path: Path, root: str | Path | None,
             limits: ImageLimits) -> tuple[dict[str, Any], int | None]:
    root_p = Path(root) if root is not None else path.parent
    rel = path.relative_to(root_p).as_posix()
    if not _utf8_name(path):
        shown = display_path(path)
        raise InputError(shown, display_path(path.name),
                         "file name is not valid UTF-8 text (image ids are UTF-8): rename "
                         "the file", image_id=display_path(path.name))
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(path, path.name, f"cannot read: {e.strerror or e}",
                         image_id=path.name) from None
    if not size:
        raise InputError(path, path.name, "empty file", image_id=path.name)
    if size > limits.max_bytes:
        raise InputError(path, path.name, f"{size / 2**20:,.1f} MiB is over the "
                         f"{limits.max_bytes / 2**20:g} MiB limit (raise it with "
                         "--max-image-mb)", image_id=path.name)
    try:
        data = path.read_bytes()  # at most limits.max_bytes: read once, hash, decode
    except OSError as e:
        raise InputError(path, path.name, f"cannot read: {e.strerror or e}",
                         image_id=path.name) from None
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height, mode = img.size[0], img.size[1], img.mode
                if width * height > limits.max_pixels:
                    raise InputError(path, path.name, f"{width}x{height} = "
                                     f"{width * height / 1e6:,.1f} megapixels is over the "
                                     f"{limits.max_pixels / 1e6:g} megapixel limit (raise "
                                     "it with --max-image-megapixels)", image_id=path.name)
                img.load()  # decode every pixel: catches truncated and corrupt files
                orientation = img.getexif().get(_EXIF_ORIENTATION)
                is_png = img.format == "PNG"
    except InputError:
        raise
    except OSError as e:
        if isinstance(e, Image.UnidentifiedImageError):
            reason = "cannot decode: not a recognised image format"
        else:
            reason = _decode_reason(e)
        raise InputError(path, path.name, reason, image_id=path.name) from None
    except Exception as e:  # PIL raises many types for bad files; all mean "unreadable"
        raise InputError(path, path.name, _decode_reason(e), image_id=path.name) from None
    if is_png:
        missing = png_missing_rows(data)
        if missing:
            raise InputError(path, path.name, f"cannot decode: PNG pixel data ends early "
                             f"({missing})", image_id=path.name)
    return {"image_id": path.name, "path": rel, "width": width, "height": height,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "mode": mode}, orientation


def _decode_reason(e: BaseException) -> str:
    reason = str(e) or type(e).__name__
    if "truncated" in reason.lower():
        return f"cannot decode: truncated image ({reason})"
    return f"cannot decode: {reason}"


def png_missing_rows(data: bytes) -> str | None:
    """Why a PNG's compressed pixel data is shorter than its header says, or None.

    PIL accepts a PNG whose zlib stream is complete but holds fewer rows than the
    header's height and fills the rest with zeros; this counts the decompressed bytes
    (chunk by chunk, never the whole image at once) against ``height x (1 + row bytes)``
    per interlace pass.
    """
    with io.BytesIO(data) as f:
        if f.read(8) != _PNG_SIGNATURE:
            return None
        expected: int | None = None
        inflate = zlib.decompressobj()
        got = 0
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            body = f.read(length)
            f.read(4)  # CRC (PIL checked it while decoding)
            if ctype == b"IHDR" and len(body) >= 13:
                w, h, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body[:13])
                expected = _png_data_bytes(w, h, depth * _PNG_CHANNELS.get(colour, 4),
                                           interlace)
            elif ctype == b"IDAT":
                chunk = body
                while chunk and (expected is None or got < expected):
                    got += len(inflate.decompress(chunk, 1 << 20))  # bounded output
                    chunk = inflate.unconsumed_tail
            elif ctype == b"IEND":
                break
    if expected is None or got >= expected:
        return None
    return f"{got:,} of {expected:,} bytes of rows; the rest of the image is missing"


def _png_data_bytes(width: int, height: int, bits_per_pixel: int, interlace: int) -> int:
    """Decompressed size of a PNG's rows: a filter byte plus the packed samples per row."""
    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if interlace != 1:
        return rows(width, height)
    return sum(rows((width - x0 + dx - 1) // dx if width > x0 else 0,
                    (height - y0 + dy - 1) // dy if height > y0 else 0)
               for x0, y0, dx, dy in _ADAM7)


def scan_images(folder: str | Path, recursive: bool = True, workers: int = 1,
                progress: Callable[[int, int], None] | None = None,
                strict: bool = False, limits: ImageLimits | None = None) -> ImageScan:
    """Scan ``folder``; ``progress(done, total)`` is called after each file.

    Decoding uses ``workers`` threads. Truncated files are always refused: PIL's global
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is switched off for the duration of the scan, and
    PIL's own pixel limit is replaced by ``limits``.
    Raises ``InputError`` when ``folder`` is not a folder, and ``InputErrors`` listing
    every unreadable file when ``strict``.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise InputError(folder, "folder", "not a folder" if root.exists()
                         else "image folder not found")
    limits = limits or ImageLimits()
    files = list_image_files(root, recursive)
    rows: list[tuple[dict[str, Any], int | None]] = []
    errors: list[InputError] = []
    warns: list[InputError] = []

    def one(p: Path) -> tuple[dict[str, Any], int | None] | InputError:
        try:
            return _inspect(p, root, limits)
        except InputError as e:
            return e

    saved = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = None  # our own limit (limits.max_pixels) applies instead
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
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = saved

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
