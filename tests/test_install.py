"""A non-editable install works: the wheel carries the SQL, and the installed ``ssl-wc``
builds and queries a catalog from outside the checkout.

Offline and quick: the wheel is built from a copy of the sources with the test
interpreter's setuptools (no build isolation, no index) and installed without
dependencies into a fresh virtual environment that sees the test environment's
third-party packages through a ``.pth`` line (never this checkout: the editable install's
finder is not loaded there).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

SOURCES = ("ssl_wc", "ingest", "dashboards", "sql", "pyproject.toml", "README.md")


def _copy_sources(dst: Path) -> Path:
    dst.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore)
        else:
            shutil.copy2(src, dst / name)
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp / "src")
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(out), str(src)], check=True,
                   capture_output=True, text=True, timeout=300)
    (whl,) = out.glob("ssl_wc-*.whl")
    return whl


def test_wheel_ships_every_sql_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sql").rglob("*.sql")}
    assert expected, "the checkout has SQL files"
    assert expected <= names, sorted(expected - names)


def test_installed_wheel_builds_and_queries_a_catalog_outside_the_checkout(
        wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   text=True, timeout=300)
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import ssl_wc, ssl_wc.sqlfiles as s; "
                            "print(ssl_wc.__file__); print(s.SQL_DIR)"], cwd=tmp_path,
                           env=env, check=True, capture_output=True, text=True)
    module, sql_dir = where.stdout.split()
    assert Path(module).is_relative_to(site) and Path(sql_dir).is_relative_to(site)
    assert not Path(module).is_relative_to(ROOT)

    exe = str(venv / "bin" / "ssl-wc")
    demo = subprocess.run([exe, "-w", "wh", "demo", "--no-models"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "wh" / "ssl_wc.duckdb").is_file()
    boxes = subprocess.run([exe, "-w", "wh", "sql", "SELECT count(*) AS n FROM boxes",
                            "-f", "csv"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert boxes.returncode == 0, boxes.stderr
    assert int(boxes.stdout.split()[-1]) > 0
    info = subprocess.run([exe, "-w", "wh", "info"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    assert "SYNTHETIC" in info.stdout
