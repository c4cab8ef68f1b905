"""Image folder scans: sizes, hashes, full decodes, corrupt files named in errors."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from ssl_wc.data.errors import InputError, InputErrors
from ssl_wc.data.imagefiles import (
    IMAGE_FILES_SCHEMA,
    find_missing_images,
    inspect_image,
    scan_images,
)


def _jpeg(w: int, h: int, colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    img = Image.new("RGB", (w, h), colour)
    for x in range(0, w, 7):  # some detail so the file has a real entropy-coded body
        img.putpixel((x, (x * 3) % h), (10, 10, 10))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "Q1_wd0.jpg").write_bytes(_jpeg(240, 160))
    Image.new("L", (50, 80), 128).save(root / "sub" / "Q2_wd0.png")
    Image.new("RGB", (64, 48), (1, 2, 3)).save(root / "Q3_wd0.WEBP", "WEBP")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"junk")
    return root


def test_scan_known_answers(folder: Path) -> None:
    scan = scan_images(folder)
    assert scan.table.schema == IMAGE_FILES_SCHEMA
    assert scan.errors == () and scan.n_files == 3
    rows = {r["image_id"]: r for r in scan.table.to_pylist()}
    assert set(rows) == {"Q1_wd0.jpg", "Q2_wd0.png", "Q3_wd0.WEBP"}
    assert (rows["Q1_wd0.jpg"]["width"], rows["Q1_wd0.jpg"]["height"]) == (240, 160)
    assert rows["Q2_wd0.png"]["path"] == "sub/Q2_wd0.png" and rows["Q2_wd0.png"]["mode"] == "L"
    data = (folder / "Q1_wd0.jpg").read_bytes()
    assert rows["Q1_wd0.jpg"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert rows["Q1_wd0.jpg"]["bytes"] == len(data)
    assert scan.root == folder.resolve()
    assert scan.table.column("path").to_pylist() == sorted(scan.table.column("path").to_pylist())
    assert scan_images(folder, recursive=False).n_files == 2


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_truncated_jpeg_is_named(folder: Path, cut: float) -> None:
    data = _jpeg(300, 200)
    bad = folder / "Q9_wd0.jpg"
    bad.write_bytes(data[: int(len(data) * cut)])
    scan = scan_images(folder)
    assert scan.n_files == 3
    (err,) = scan.errors
    assert err.file == str(bad.resolve()) and err.location == "Q9_wd0.jpg"
    assert err.image_id == "Q9_wd0.jpg" and "truncated" in err.reason
    assert "Q9_wd0.jpg" in str(err)


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot decode"),
    (b"this is not a jpeg at all", "not a recognised image format"),
])
def test_corrupt_files_are_named(folder: Path, content: bytes, reason: str) -> None:
    (folder / "Q8_wd0.jpg").write_bytes(content)
    (err,) = scan_images(folder).errors
    assert err.location == "Q8_wd0.jpg" and reason in err.reason
    with pytest.raises(InputError):
        inspect_image(folder / "Q8_wd0.jpg")
    with pytest.raises(InputErrors) as info:
        scan_images(folder, strict=True)
    assert info.value.errors[0].location == "Q8_wd0.jpg"


def test_truncated_refused_even_when_pil_is_lenient(folder: Path) -> None:
    data = _jpeg(300, 200)
    (folder / "Q9_wd0.jpg").write_bytes(data[: len(data) // 2])
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        assert len(scan_images(folder).errors) == 1
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_duplicate_file_names_in_subfolders(folder: Path) -> None:
    (folder / "sub" / "Q1_wd0.jpg").write_bytes(_jpeg(20, 30))
    scan = scan_images(folder)
    assert scan.n_files == 3
    (err,) = scan.errors
    assert err.location == "Q1_wd0.jpg" and "same file name as Q1_wd0.jpg" in err.reason


def test_workers_and_progress(folder: Path) -> None:
    calls: list[tuple[int, int]] = []
    scan = scan_images(folder, workers=3, progress=lambda d, t: calls.append((d, t)))
    assert scan.table.equals(scan_images(folder).table)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_exif_orientation_warns(folder: Path) -> None:
    img = Image.new("RGB", (40, 20), (9, 9, 9))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(folder / "Q7_wd0.jpg", exif=exif)
    scan = scan_images(folder)
    (w,) = scan.warnings
    assert w.location == "Q7_wd0.jpg" and "orientation 6" in w.reason


def test_missing_annotated_images(folder: Path) -> None:
    (folder / "Q8_wd0.jpg").write_bytes(b"broken")
    scan = scan_images(folder)
    errs = find_missing_images(["Q1_wd0.jpg", "Q5_wd0.jpg", "q1_WD0.jpg", "Q8_wd0.jpg"], scan)
    assert [e.location for e in errs] == ["Q5_wd0.jpg", "q1_WD0.jpg", "Q8_wd0.jpg"]
    assert "no file" in errs[0].reason and "Q1_wd0.jpg differs in case" in errs[1].reason
    assert "unreadable" in errs[2].reason
    assert all(e.file == str(scan.root) for e in errs)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="image folder not found"):
        scan_images(tmp_path / "nope")


# --------------------------------------------------------------------------- limits, names
def _png_rows(width: int, height: int, rows: int, interlace: int = 0) -> bytes:
    """An 8-bit RGB PNG whose (complete) zlib stream holds only ``rows`` rows."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    data = bytes(rows * (1 + 3 * width))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(data))
            + chunk(b"IEND", b""))


def test_png_row_counts_known_answers() -> None:
    from ssl_wc.data.imagefiles import _png_data_bytes, png_missing_rows

    # 8x8 grey, Adam7 passes 1x1, 1x1, 2x1, 2x2, 4x2, 4x4, 8x4 plus a filter byte per row
    assert _png_data_bytes(8, 8, 8, 1) == 2 + 2 + 3 + 6 + 10 + 20 + 36
    assert _png_data_bytes(8, 8, 8, 0) == 8 * 9
    assert _png_data_bytes(3, 2, 1, 0) == 2 * (1 + 1)  # 1-bit pixels pack into one byte
    assert _png_data_bytes(1, 1, 24, 1) == 4  # only the first pass has a pixel
    assert png_missing_rows(_png_rows(10, 6, 6)) is None
    assert png_missing_rows(_png_rows(10, 6, 2)) == \
        "62 of 186 bytes of rows; the rest of the image is missing"
    assert png_missing_rows(b"not a png") is None


def test_png_with_missing_rows_is_refused(tmp_path: Path) -> None:
    """PIL alone accepts it (the rest reads as black); the scan does not."""
    path = tmp_path / "Q9_wd0.png"
    path.write_bytes(_png_rows(40, 30, 5))
    with Image.open(path) as im:
        im.load()  # no error from PIL
    with pytest.raises(InputError, match=r"Q9_wd0.png: cannot decode: PNG pixel data ends "
                                         r"early \(605 of 3,630 bytes"):
        inspect_image(path)
    ok = tmp_path / "ok.png"
    ok.write_bytes(_png_rows(40, 30, 30))
    assert inspect_image(ok)["height"] == 30


def test_byte_and_pixel_limits_refuse_before_reading(tmp_path: Path) -> None:
    from ssl_wc.data.imagefiles import ImageLimits

    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:  # sparse: never read
        f.truncate(3 * 2**30)
    with pytest.raises(InputError, match=r"3,072.0 MiB is over the 100 MiB limit \(raise it "
                                         r"with --max-image-mb\)"):
        inspect_image(big)
    wide = tmp_path / "wide.png"
    Image.new("L", (400, 300)).save(wide)
    with pytest.raises(InputError, match=r"400x300 = 0.1 megapixels is over the 0.1 megapixel "
                                         r"limit \(raise it with --max-image-megapixels\)"):
        inspect_image(wide, limits=ImageLimits(max_pixels=100_000))
    assert inspect_image(wide, limits=ImageLimits(max_pixels=120_000))["width"] == 400
    scan = scan_images(tmp_path, limits=ImageLimits(max_bytes=10 * 2**20, max_pixels=10**6))
    assert [r["image_id"] for r in scan.table.to_pylist()] == ["wide.png"]
    assert [e.image_id for e in scan.errors] == ["big.jpg"]
    with pytest.raises(ValueError):
        ImageLimits(max_bytes=0)


def test_a_name_that_is_not_utf8_is_one_error_not_an_aborted_scan(tmp_path: Path) -> None:
    import os

    Image.new("RGB", (8, 8)).save(tmp_path / "Q1_wd0.jpg")
    bad = os.fsdecode(os.fsencode(tmp_path) + b"/Q2_\xff\xfe.jpg")
    Image.new("RGB", (8, 8)).save(bad, "JPEG")
    scan = scan_images(tmp_path)
    assert scan.table.column("image_id").to_pylist() == ["Q1_wd0.jpg"]
    (err,) = scan.errors
    assert err.image_id == "Q2_\\xff\\xfe.jpg" and "not valid UTF-8" in err.reason
    str(err).encode("utf-8")  # printable and storable as text
    with pytest.raises(InputErrors, match="not valid UTF-8"):
        scan_images(tmp_path, strict=True)
