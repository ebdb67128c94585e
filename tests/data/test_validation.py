"""Great Expectations validation of beat tables: real beats pass, each kind of bad data fails.

The fixtures ``tests/fixtures/beats_{mitbih,ptb}.parquet`` are real beats cut by
``scripts/make_beat_fixtures.py`` (MIT-BIH records 208/232/217; PTB-XL and PTB Diagnostic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config, load_config
from ecgops.data.validation import (
    ValidationReport,
    read_beat_table,
    validate_beats,
    validate_file,
    validate_task,
)
from ecgops.errors import DataError, ValidationFailed
from ecgops.schema import SIGNAL_COLUMNS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
MIN_ROWS = 40
MIN_PER_CLASS = 10


@pytest.fixture(scope="module")
def cfg() -> Config:
    """The project config with minima the small fixtures satisfy."""
    return load_config(
        root=ROOT,
        profile="smoke",
        overrides={
            "validation": {
                "min_rows": {"mitbih": MIN_ROWS, "ptb": MIN_ROWS},
                "min_per_class": {"mitbih": MIN_PER_CLASS, "ptb": MIN_PER_CLASS},
            }
        },
    )


@pytest.fixture(scope="module")
def mitbih() -> pd.DataFrame:
    return pd.read_parquet(FIXTURES / "beats_mitbih.parquet")


@pytest.fixture(scope="module")
def ptb() -> pd.DataFrame:
    return pd.read_parquet(FIXTURES / "beats_ptb.parquet")


def test_fixtures_are_real_beat_tables(mitbih: pd.DataFrame, ptb: pd.DataFrame) -> None:
    for table, labels in ((mitbih, {0, 1, 2, 3, 4}), (ptb, {0, 1})):
        assert set(table["label"]) == labels
        assert all(table[c].dtype == np.float32 for c in SIGNAL_COLUMNS)
        assert 100 <= len(table) <= 200


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_real_beats_pass_and_reports_are_written(task: str, cfg: Config, tmp_path: Path) -> None:
    source = FIXTURES / f"beats_{task}.parquet"
    report = validate_file(source, task, cfg, tmp_path / "report")

    assert isinstance(report, ValidationReport)
    assert report.success and report.failures == []
    table = pd.read_parquet(source)
    assert report.n_rows == len(table)
    expected = table["label"].value_counts().to_dict()
    assert report.class_counts == {lab: expected.get(lab, 0) for lab in report.class_counts}
    assert sorted(report.class_counts) == list(range(len(cfg.class_names(task))))
    assert report.statistics["unsuccessful_expectations"] == 0
    assert report.statistics["evaluated_expectations"] >= 15
    assert report.statistics["max_inner_zero_run"] <= cfg.validation.max_inner_zero_run

    result = json.loads(report.result_path.read_text())
    assert report.result_path == tmp_path / "report" / "validation.json"
    assert result["success"] is True
    assert result["meta"]["ecgops"]["source"] == str(source)
    assert report.docs_path == tmp_path / "report" / "data_docs" / "index.html"
    assert report.docs_path.is_file()
    pages = list((tmp_path / "report" / "data_docs" / "validations").rglob("*.html"))
    assert pages and "_inner_zero_run" in pages[0].read_text()


def test_no_report_dir_writes_nothing(
    mitbih: pd.DataFrame, cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = mitbih.copy()
    report = validate_beats(mitbih, "mitbih", cfg, "beats.parquet")
    assert report.success and report.result_path is None and report.docs_path is None
    assert list(tmp_path.iterdir()) == []
    pd.testing.assert_frame_equal(mitbih, before)  # the caller's table is left as it was


# ---- each kind of bad data -------------------------------------------------------------------


def _set(row: int, col: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(value, float | int):
            df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df

    return edit


def _middle_padding(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[7, [f"x{i}" for i in range(20, 40)]] = 0.0
    df.loc[7, "x60"] = 0.5  # the beat goes on after the zeros
    return df


def _duplicate_row(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[3]]], ignore_index=True)


def _duplicate_signal(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[9, SIGNAL_COLUMNS] = df.loc[4, SIGNAL_COLUMNS].to_numpy()
    return df


def _too_few_of_class(df: pd.DataFrame) -> pd.DataFrame:
    rare = df.index[df["label"] == 3][MIN_PER_CLASS - 1 :]
    return df.drop(index=rare).reset_index(drop=True)


def _class_absent(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["label"] != 3].reset_index(drop=True)


def _all_zero_row(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[11, SIGNAL_COLUMNS] = 0.0
    return df


def _string_column(df: pd.DataFrame) -> pd.DataFrame:
    df["x3"] = df["x3"].astype(str)
    return df


BAD_CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "nan": (_set(5, "x10", np.nan), ["(_n_nan)", "row 5", "x10 = nan"]),
    "inf": (_set(6, "x11", np.inf), ["(_n_inf)", "row 6", "x11 = inf"]),
    "above_one": (_set(8, "x12", 1.5), ["(_max)", "row 8", "x12 = 1.5"]),
    "negative": (_set(9, "x13", -0.25), ["(_min)", "row 9", "x13 = -0.25"]),
    "label_out_of_range": (
        _set(2, "label", 7),
        ["expect_column_values_to_be_in_set(label)", "unexpected labels [7]", "row 2"],
    ),
    "label_not_integer": (
        lambda df: df.assign(label=df["label"].astype(np.float64)),
        ["expect_column_values_to_be_in_type_list(label)"],
    ),
    "missing_column": (
        lambda df: df.drop(columns=["x100"]),
        ["expect_table_columns_to_match_set", "missing columns [x100]"],
    ),
    "missing_id_column": (
        lambda df: df.drop(columns=["patient"]),
        ["missing columns [patient]"],
    ),
    "unknown_column": (
        lambda df: df.assign(heart_rate=60.0),
        ["expect_table_columns_to_match_set", "unknown columns [heart_rate]"],
    ),
    "non_numeric_cell": (
        _set(4, "x20", "abc"),
        ["(_n_nonnumeric)", "non-numeric columns [x20 (object)]", "row 4", "x20 = 'abc'"],
    ),
    "non_numeric_column": (_string_column, ["(_n_nonnumeric)", "x3 (str)"]),
    "missing_patient_id": (
        _set(3, "patient", None),
        ["expect_column_values_to_not_be_null(patient)", "row 3"],
    ),
    "blank_record_id": (_set(12, "record", " "), ["(_n_blank_ids)", "row 12", "empty record"]),
    "padding_in_the_middle": (
        _middle_padding,
        ["(_inner_zero_run)", "row 7", "20 zeros in a row", "x20..x39 zero"],
    ),
    "all_zero_row": (_all_zero_row, ["(_length)", "row 11", "0 samples before the padding"]),
    "too_few_rows": (
        lambda df: df.iloc[: MIN_ROWS - 1].reset_index(drop=True),
        ["expect_table_row_count_to_be_between", f"observed {MIN_ROWS - 1}"],
    ),
    "too_few_of_a_class": (
        _too_few_of_class,
        ["(_class_count)", f"label 3 has {MIN_PER_CLASS - 1} rows"],
    ),
    "class_absent": (
        _class_absent,
        ["expect_column_distinct_values_to_contain_set(label)", "classes without rows: [3]"],
    ),
    "duplicated_row": (
        _duplicate_row,
        ["expect_compound_columns_to_be_unique(source,record,beat)", "(_signal_hash)", "row 3"],
    ),
    "duplicated_signal": (
        _duplicate_signal,
        ["(_signal_hash)", "row 4", "same 187 values as row(s) [9]"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_fails_with_a_clear_message(case: str, mitbih: pd.DataFrame, cfg: Config) -> None:
    edit, expected = BAD_CASES[case]
    bad = edit(mitbih.copy())
    with pytest.raises(ValidationFailed) as info:
        validate_beats(bad, "mitbih", cfg, Path("data/processed/mitbih.parquet"))
    message = str(info.value)
    assert message.startswith("data/processed/mitbih.parquet: validation failed: ")
    for part in expected:
        assert part in message, f"{part!r} not in {message}"
    assert info.value.failures and all(len(f) < 2000 for f in info.value.failures)


def test_only_the_broken_expectation_fails(mitbih: pd.DataFrame, cfg: Config) -> None:
    report = validate_beats(
        _set(5, "x10", np.nan)(mitbih.copy()), "mitbih", cfg, "t", raise_on_failure=False
    )
    assert not report.success
    assert report.statistics["unsuccessful_expectations"] == 1
    assert len(report.failures) == 1 and "(_n_nan)" in report.failures[0]


def test_ptb_labels_are_binary(ptb: pd.DataFrame, cfg: Config) -> None:
    bad = ptb.copy()
    bad.loc[0, "label"] = 2  # a valid MIT-BIH label, not a PTB one
    with pytest.raises(ValidationFailed, match=r"labels in \[0, 1\]"):
        validate_beats(bad, "ptb", cfg, "ptb.parquet")


def test_optional_meta_columns_are_allowed(mitbih: pd.DataFrame, cfg: Config) -> None:
    table = mitbih.drop(columns=["source"]).assign(kaggle_split="train")
    assert validate_beats(table, "mitbih", cfg, "kaggle.parquet").success


def test_odd_tables_get_clear_errors(mitbih: pd.DataFrame, cfg: Config) -> None:
    with pytest.raises(ValidationFailed, match=r"row_count_to_be_between.*observed 0"):
        validate_beats(mitbih.iloc[:0], "mitbih", cfg, "empty.parquet")
    kaggle_like = mitbih[SIGNAL_COLUMNS + ["label"]].set_axis(range(188), axis=1)
    with pytest.raises(ValidationFailed, match=r"missing columns \[beat, label, patient"):
        validate_beats(kaggle_like, "mitbih", cfg, "mitbih_train.csv")
    repeated = pd.concat([mitbih, mitbih[["x5"]]], axis=1)
    with pytest.raises(DataError, match=r"t\.parquet: repeated column names \[x5\]"):
        validate_beats(repeated, "mitbih", cfg, "t.parquet")
    with pytest.raises(DataError, match=r"columns \[_n_nan\] are not beat-table columns"):
        validate_beats(mitbih.assign(_n_nan=0), "mitbih", cfg, "t.parquet")
    with pytest.raises(ValueError, match="unknown task"):
        validate_beats(mitbih, "mitdb", cfg, "t.parquet")


def test_failure_writes_the_report(mitbih: pd.DataFrame, cfg: Config, tmp_path: Path) -> None:
    good = validate_beats(mitbih, "mitbih", cfg, "good.parquet", tmp_path)
    assert json.loads(good.result_path.read_text())["success"] is True
    with pytest.raises(ValidationFailed) as info:
        validate_beats(_middle_padding(mitbih.copy()), "mitbih", cfg, "bad.parquet", tmp_path)
    assert info.value.report == str(tmp_path / "validation.json")
    assert f"(report: {tmp_path / 'validation.json'})" in str(info.value)
    result = json.loads((tmp_path / "validation.json").read_text())
    assert result["success"] is False
    assert result["meta"]["ecgops"]["failures"] == info.value.failures
    assert (tmp_path / "data_docs" / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


# ---- reading the file ------------------------------------------------------------------------


def test_read_errors_name_the_file(tmp_path: Path, cfg: Config) -> None:
    missing = tmp_path / "nope.parquet"
    with pytest.raises(DataError, match=r"nope\.parquet: file not found"):
        validate_file(missing, "mitbih", cfg)

    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.parquet: empty file"):
        read_beat_table(empty)

    truncated = tmp_path / "truncated.parquet"
    data = (FIXTURES / "beats_mitbih.parquet").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated\.parquet: not a readable parquet file"):
        read_beat_table(truncated)

    csv = tmp_path / "beats.parquet"
    csv.write_text("0.1,0.2,0.3,0\n")
    with pytest.raises(DataError, match=r"beats\.parquet: not a readable parquet file"):
        read_beat_table(csv)

    with pytest.raises(DataError, match="not a file"):
        read_beat_table(tmp_path)


def test_validate_task_uses_the_project_layout(cfg: Config, tmp_path: Path) -> None:
    project = cfg.model_copy(update={"root": tmp_path})
    processed = project.path("processed")
    processed.mkdir(parents=True)
    (processed / "ptb.parquet").write_bytes((FIXTURES / "beats_ptb.parquet").read_bytes())

    report = validate_task(project, "ptb")

    out = tmp_path / "outputs" / "validation" / "ptb"
    assert report.success and report.result_path == out / "validation.json"
    assert (out / "data_docs" / "index.html").is_file()
