"""Bad input at the data entry points: a clear error naming the file, a non-zero exit, and
no earlier good output overwritten."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ecgops.config import Config
from ecgops.data.build import build_task
from ecgops.data.kaggle import import_kaggle
from ecgops.data.raw import import_raw
from ecgops.errors import DataError, EcgopsError

ROOT = Path(__file__).resolve().parents[2]
KAGGLE = ROOT / "tests" / "fixtures" / "kaggle"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def built(cfg_smoke: Config) -> Config:
    """A smoke project whose ptb table was built once from good raw records."""
    import_raw(cfg_smoke)
    build_task(cfg_smoke, "ptb")
    return cfg_smoke


def _ptbxl_record(cfg: Config) -> Path:
    """One PTB-XL record of the raw copy (path without extension)."""
    hea = sorted((cfg.path("raw") / "ptbxl").rglob("*.hea"))[0]
    return hea.with_suffix("")


def _truncate_dat(cfg: Config) -> Path:
    dat = _ptbxl_record(cfg).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    return dat


def _remove_hea(cfg: Config) -> Path:
    hea = _ptbxl_record(cfg).with_suffix(".hea")
    hea.unlink()
    return hea


def _empty_dat(cfg: Config) -> Path:
    dat = _ptbxl_record(cfg).with_suffix(".dat")
    dat.write_bytes(b"")
    return dat


@pytest.mark.parametrize("damage", [_truncate_dat, _remove_hea, _empty_dat])
def test_wfdb_damage_is_named_and_keeps_the_good_table(
    built: Config, damage: Callable[[Config], Path]
) -> None:
    table = built.path("processed") / "ptb.parquet"
    before = _digest(table)
    broken = damage(built)
    with pytest.raises(DataError) as err:
        build_task(built, "ptb")
    assert broken.stem in str(err.value)
    assert _digest(table) == before


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text)


def _good_kaggle(tmp: Path) -> Path:
    folder = tmp / "kaggle"
    shutil.copytree(KAGGLE, folder)
    return folder


def _first_line(folder: Path, name: str) -> str:
    return (folder / name).read_text().splitlines()[0]


def _case_header(folder: Path) -> str:
    text = (folder / "ptbdb_normal.csv").read_text()
    _write(folder, "ptbdb_normal.csv", ",".join(f"c{i}" for i in range(188)) + "\n" + text)
    return "ptbdb_normal.csv"


def _case_wrong_width(folder: Path) -> str:
    row = _first_line(folder, "ptbdb_abnormal.csv").split(",")
    _write(folder, "ptbdb_abnormal.csv", ",".join(row[:100]) + "\n")
    return "ptbdb_abnormal.csv"


def _one_bad_cell(folder: Path, name: str, column: int, value: str) -> str:
    """Rewrite ``name`` as its first line with one cell replaced by ``value``."""
    row = _first_line(folder, name).split(",")
    row[column] = value
    _write(folder, name, ",".join(row) + "\n")
    return name


def _case_nan(folder: Path) -> str:
    return _one_bad_cell(folder, "ptbdb_normal.csv", 5, "nan")


def _case_label(folder: Path) -> str:
    return _one_bad_cell(folder, "ptbdb_abnormal.csv", -1, "7")


def _case_text(folder: Path) -> str:
    return _one_bad_cell(folder, "ptbdb_normal.csv", 3, "abc")


def _case_empty(folder: Path) -> str:
    _write(folder, "ptbdb_normal.csv", "")
    return "ptbdb_normal.csv"


def _case_truncated(folder: Path) -> str:
    text = (folder / "ptbdb_abnormal.csv").read_text()
    _write(folder, "ptbdb_abnormal.csv", text[: len(text) // 2 + 7])
    return "ptbdb_abnormal.csv"


def _case_missing(folder: Path) -> str:
    (folder / "ptbdb_normal.csv").unlink()
    return "ptbdb_normal.csv"


@pytest.mark.parametrize(
    "case",
    [
        _case_header,
        _case_wrong_width,
        _case_nan,
        _case_label,
        _case_text,
        _case_empty,
        _case_truncated,
        _case_missing,
    ],
)
def test_kaggle_bad_file_is_named_and_keeps_the_good_table(
    built: Config, tmp_path: Path, case: Callable[[Path], str]
) -> None:
    table = built.path("processed") / "ptb.parquet"
    before = _digest(table)
    folder = _good_kaggle(tmp_path)
    (folder / "mitbih_train.csv").unlink()
    (folder / "mitbih_test.csv").unlink()
    name = case(folder)
    with pytest.raises(EcgopsError) as err:
        import_kaggle(built, folder)
    assert name in str(err.value)
    assert _digest(table) == before


def test_cli_reports_one_clear_line_and_exits_non_zero(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [sys.executable, "-m", "ecgops.cli", "data", "import-kaggle", str(missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr
