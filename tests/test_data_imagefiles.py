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
