"""Kaggle CSV layout: import (with every kind of bad input), export, round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config
from ecgops.data import kaggle
from ecgops.data.build import summary_path, table_path
from ecgops.data.splits import load_split, make_splits
from ecgops.errors import DataError
from ecgops.io import read_json
from ecgops.schema import SIGNAL_COLUMNS, has_context

KAGGLE = Path(__file__).resolve().parents[1] / "fixtures" / "kaggle"
FILES = ["mitbih_train.csv", "mitbih_test.csv", "ptbdb_normal.csv", "ptbdb_abnormal.csv"]


@pytest.fixture
def cfg_k(cfg_smoke_factory) -> Config:
    """Smoke config with validation minima that a few rows per file meet."""
    return cfg_smoke_factory(
        validation={"min_rows": {"mitbih": 5, "ptb": 5}, "min_per_class": {"mitbih": 1, "ptb": 1}}
    )


@pytest.fixture
def kdir(tmp_path: Path) -> Path:
    """A writable copy of the Kaggle fixtures."""
    d = tmp_path / "kaggle"
    shutil.copytree(KAGGLE, d)
    return d


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_fixtures_are_in_the_exact_layout() -> None:
    for name in FILES:
        rows = lines(KAGGLE / name)
        assert rows and all(len(r.split(",")) == 188 for r in rows)
        values = np.array([[float(v) for v in r.split(",")] for r in rows])
        assert values[:, :187].min() >= 0 and values[:, :187].max() <= 1
    assert {float(r.split(",")[-1]) for r in lines(KAGGLE / "ptbdb_normal.csv")} == {0.0}
    assert {float(r.split(",")[-1]) for r in lines(KAGGLE / "ptbdb_abnormal.csv")} == {1.0}


def test_import_builds_both_tables(cfg_k: Config, kdir: Path) -> None:
    written = kaggle.import_kaggle(cfg_k, kdir)
    assert written == {t: table_path(cfg_k, t) for t in ("mitbih", "ptb")}
    mit = pd.read_parquet(written["mitbih"])
    n_train, n_test = len(lines(kdir / FILES[0])), len(lines(kdir / FILES[1]))
    assert len(mit) == n_train + n_test
    assert mit["kaggle_split"].tolist() == ["train"] * n_train + ["test"] * n_test
    assert mit["patient"].iloc[0] == "kaggle-mitbih_train-0"
    assert mit["patient"].iloc[-1] == f"kaggle-mitbih_test-{n_test - 1}"
    assert mit["patient"].is_unique and (mit["source"] == "kaggle").all()
    assert set(mit["label"]) == {0, 1, 2, 3, 4}
    assert not has_context(mit)  # the Kaggle layout has no RR context
    ptb = pd.read_parquet(written["ptb"])
    assert list(ptb.columns) == ["patient", "record", "beat", "label", "source", *SIGNAL_COLUMNS]
    summary = read_json(summary_path(cfg_k, "ptb"))
    assert summary["per_class"] == {"healthy": 4, "MI": 4} and summary["source"] == "kaggle"


def test_round_trip_reproduces_the_files(cfg_k: Config, kdir: Path, tmp_path: Path) -> None:
    kaggle.import_kaggle(cfg_k, kdir)
    for task in ("mitbih", "ptb"):
        make_splits(cfg_k, task)
    parts = load_split(cfg_k, "mitbih", "beat")
    assert set(parts["test"]["kaggle_split"]) == {"test"}  # Kaggle's own test file
    out = tmp_path / "export"
    written = kaggle.export_kaggle(cfg_k, out)
    assert sorted(written) == sorted(FILES)
    for name in FILES:
        assert (out / name).read_bytes() == (kdir / name).read_bytes(), name


def test_export_from_a_built_table(smoke_data: Config, tmp_path: Path) -> None:
    written = kaggle.export_kaggle(smoke_data, tmp_path)
    mit = pd.read_parquet(table_path(smoke_data, "mitbih"))
    n_test = len(load_split(smoke_data, "mitbih", "beat")["test"])
    assert len(lines(written["mitbih_test.csv"])) == n_test
    assert len(lines(written["mitbih_train.csv"])) == len(mit) - n_test
    x, y = kaggle.read_kaggle_csv(written["ptbdb_abnormal.csv"], [1])
    assert x.shape[1] == 187 and set(y) == {1}


def test_export_needs_the_mitbih_split(cfg_k: Config, kdir: Path, tmp_path: Path) -> None:
    kaggle.import_kaggle(cfg_k, kdir)
    with pytest.raises(DataError, match=r"splits/mitbih\.parquet: not found"):
        kaggle.export_kaggle(cfg_k, tmp_path / "out")


def test_only_one_task_present_imports_that_task(cfg_k: Config, kdir: Path) -> None:
    (kdir / "mitbih_train.csv").unlink()
    (kdir / "mitbih_test.csv").unlink()
    assert list(kaggle.import_kaggle(cfg_k, kdir)) == ["ptb"]


# ---- bad input: one test per kind, each naming the file -----------------------------------


def expect(cfg: Config, kdir: Path, pattern: str) -> None:
    """Import fails with ``pattern`` and nothing is written."""
    with pytest.raises(DataError, match=pattern):
        kaggle.import_kaggle(cfg, kdir)
    assert not cfg.path("processed").exists()


def edit_line(path: Path, number: int, fn) -> None:
    rows = lines(path)
    rows[number - 1] = fn(rows[number - 1])
    path.write_text("\n".join(rows) + "\n")


def test_missing_directory(cfg_k: Config, tmp_path: Path) -> None:
    expect(cfg_k, tmp_path / "nope", r"nope: not a directory")


def test_no_kaggle_files(cfg_k: Config, tmp_path: Path) -> None:
    expect(cfg_k, tmp_path, r"none of the Kaggle files found")


def test_missing_file_of_a_pair(cfg_k: Config, kdir: Path) -> None:
    (kdir / "ptbdb_abnormal.csv").unlink()
    expect(cfg_k, kdir, r"ptbdb_abnormal\.csv: file not found \(needed with ptbdb_normal")


def test_empty_file(cfg_k: Config, kdir: Path) -> None:
    (kdir / "mitbih_test.csv").write_text("")
    expect(cfg_k, kdir, r"mitbih_test\.csv: file is empty")


def test_header_row(cfg_k: Config, kdir: Path) -> None:
    path = kdir / "ptbdb_normal.csv"
    header = ",".join([*(f"x{i}" for i in range(187)), "label"])
    path.write_text(header + "\n" + path.read_text())
    expect(cfg_k, kdir, r"ptbdb_normal\.csv: line 1 is a header row \('x0'")


def test_wrong_column_count(cfg_k: Config, kdir: Path) -> None:
    edit_line(kdir / "mitbih_train.csv", 3, lambda r: r.split(",", 1)[1])
    expect(cfg_k, kdir, r"mitbih_train\.csv: line 3 has 187 columns, expected 188")


def test_truncated_last_line(cfg_k: Config, kdir: Path) -> None:
    path = kdir / "ptbdb_abnormal.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 1500])
    expect(cfg_k, kdir, r"ptbdb_abnormal\.csv: truncated last line 4: \d+ of 188 values")


def test_truncated_last_value(cfg_k: Config, kdir: Path) -> None:
    path = kdir / "ptbdb_abnormal.csv"
    path.write_text(path.read_text()[:-3])  # "1.000000000000000000e+00" -> "...e+"
    expect(cfg_k, kdir, r"ptbdb_abnormal\.csv: line 4, column 188: .* is not a number")


def test_non_numeric_cell(cfg_k: Config, kdir: Path) -> None:
    edit_line(kdir / "mitbih_test.csv", 2, lambda r: r.replace(",", ",abc,", 1).rsplit(",", 1)[0])
    expect(cfg_k, kdir, r"mitbih_test\.csv: line 2, column 2: 'abc' is not a number")


@pytest.mark.parametrize("token", ["nan", "inf", ""])
def test_nan_inf_or_missing_value(cfg_k: Config, kdir: Path, token: str) -> None:
    def put(row: str) -> str:
        cells = row.split(",")
        cells[10] = token
        return ",".join(cells)

    edit_line(kdir / "ptbdb_normal.csv", 2, put)
    expect(cfg_k, kdir, r"ptbdb_normal\.csv: line 2, column 11: missing or non-finite")


def test_value_outside_unit_range(cfg_k: Config, kdir: Path) -> None:
    edit_line(kdir / "mitbih_train.csv", 1, lambda r: "1.5" + r[r.index(",") :])
    expect(cfg_k, kdir, r"mitbih_train\.csv: line 1, column 1: value 1.5 outside \[0, 1\]")


@pytest.mark.parametrize(
    ("name", "label", "pattern"),
    [
        (
            "mitbih_train.csv",
            "5",
            r"mitbih_train\.csv: line 2: label 5 out of range .*0, 1, 2, 3, 4",
        ),
        ("mitbih_test.csv", "-1", r"mitbih_test\.csv: line 2: label -1 out of range"),
        ("ptbdb_normal.csv", "1", r"ptbdb_normal\.csv: line 2: label 1 out of range .*allowed: 0"),
        ("ptbdb_abnormal.csv", "0", r"ptbdb_abnormal\.csv: line 2: label 0 out of range"),
        ("mitbih_train.csv", "0.5", r"mitbih_train\.csv: line 2: label 0.5 is not an integer"),
    ],
)
def test_labels_out_of_range(cfg_k: Config, kdir: Path, name: str, label: str, pattern):
    edit_line(kdir / name, 2, lambda r: r.rsplit(",", 1)[0] + "," + label)
    expect(cfg_k, kdir, pattern)


def test_blank_line(cfg_k: Config, kdir: Path) -> None:
    path = kdir / "ptbdb_normal.csv"
    rows = lines(path)
    path.write_text("\n".join([rows[0], "", *rows[1:]]) + "\n")
    expect(cfg_k, kdir, r"ptbdb_normal\.csv: line 2 is empty")


def test_bad_file_keeps_the_previous_tables(cfg_k: Config, kdir: Path) -> None:
    kaggle.import_kaggle(cfg_k, kdir)
    before = {t: table_path(cfg_k, t).read_bytes() for t in ("mitbih", "ptb")}
    edit_line(kdir / "ptbdb_abnormal.csv", 1, lambda r: r.rsplit(",", 1)[0] + ",7")
    with pytest.raises(DataError, match="label 7"):
        kaggle.import_kaggle(cfg_k, kdir)
    assert {t: table_path(cfg_k, t).read_bytes() for t in before} == before
