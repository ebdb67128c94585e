"""Raw fixtures -> validated beat tables with summaries; failures leave earlier output alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgops.config import Config
from ecgops.data.build import build_task, collect, save_table, summary_path, table_path
from ecgops.data.raw import import_raw
from ecgops.errors import DataError, ValidationFailed
from ecgops.io import read_json
from ecgops.schema import (
    CONTEXT_COLUMNS,
    POSITION_COLUMNS,
    SIGNAL_COLUMNS,
    padding_mask,
    true_lengths,
)

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"
META = ["patient", "record", "beat", "label", "source"]


@pytest.fixture(scope="module")
def tables(smoke_data: Config) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(table_path(smoke_data, t)) for t in ("mitbih", "ptb")}


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_table_layout(tables: dict[str, pd.DataFrame], task: str) -> None:
    df = tables[task]
    if task == "mitbih":  # R-peak position and RR context (tests/data/test_rhythm.py)
        assert list(df.columns) == META + POSITION_COLUMNS + SIGNAL_COLUMNS + CONTEXT_COLUMNS
    else:
        assert list(df.columns) == META + SIGNAL_COLUMNS
    assert all(df[c].dtype == np.float32 for c in SIGNAL_COLUMNS)
    assert df["label"].dtype == np.int64 and df["beat"].dtype == np.int64
    assert not df[["patient", "record"]].isna().any().any()
    assert not df.duplicated(["source", "record", "beat"]).any()


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_beats_are_normalised_and_padded_only_at_the_end(tables, task: str) -> None:
    x = tables[task][SIGNAL_COLUMNS].to_numpy()
    assert x.shape[1] == 187 and x.min() >= 0.0 and x.max() <= 1.0
    lengths = true_lengths(x)
    assert lengths.min() >= 20  # stubs cut by the window end are dropped
    assert np.all(x[padding_mask(x)] == 0)
    # no padding-like runs of zeros inside a beat
    inner = (x == 0) & ~padding_mask(x)
    assert inner.sum(axis=1).max() <= 4


def test_beat_index_counts_up_within_each_record(tables) -> None:
    for df in tables.values():
        for _, group in df.groupby(["source", "record"], sort=False):
            assert group["beat"].tolist() == list(range(len(group)))


def test_mitbih_labels_and_patients(tables, smoke_data: Config) -> None:
    df = tables["mitbih"]
    assert set(df["label"]) == {0, 1, 2, 3, 4}
    assert (df["patient"] == df["record"]).all()
    assert set(df["record"]) == {"104", "114", "200", "208", "209", "213", "232"}
    assert (df.loc[df["record"] == "104", "label"] == 4).mean() > 0.9


def test_ptb_sources_patients_and_labels(tables) -> None:
    df = tables["ptb"]
    assert set(df["source"]) == {"ptbxl", "ptbdb"}
    assert set(df["label"]) == {0, 1}
    assert df.groupby("patient")["label"].nunique().max() == 1
    assert df.loc[df["patient"] == "ptbxl-21551", "record"].unique().tolist() == [
        "00177_hr",
        "00181_hr",
    ]
    assert set(df.loc[df["source"] == "ptbdb", "patient"]) == {
        "ptbdb-patient205",
        "ptbdb-patient214",
    }


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_summary_matches_the_table(tables, smoke_data: Config, task: str) -> None:
    df = tables[task]
    summary = read_json(summary_path(smoke_data, task))
    names = smoke_data.class_names(task)
    assert summary["beats"] == len(df)
    assert summary["per_class"] == {n: int((df["label"] == i).sum()) for i, n in enumerate(names)}
    assert sum(s["beats"] for s in summary["per_source"].values()) == len(df)
    assert summary["peak_stats"]["primary"] in summary["peak_stats"]["variants"]


def test_ptb_peak_stats_compare_both_rules(smoke_data: Config) -> None:
    stats = read_json(summary_path(smoke_data, "ptb"))["peak_stats"]["variants"]
    with_distance, without = stats["refractory"], stats["no_refractory"]
    assert without["beats"] >= with_distance["beats"]
    assert without["short_share"] >= with_distance["short_share"]
    assert {"by_class", "by_heart_rate", "beats_per_min_over_hr_median"} <= set(with_distance)


def test_mitbih_peak_stats_measure_the_rule_against_annotations(smoke_data: Config) -> None:
    stats = read_json(summary_path(smoke_data, "mitbih"))["peak_stats"]
    vs = stats["variants"]["rule_refractory"]["vs_annotations"]
    assert vs["positive_predictivity"] > 0.9 and 0 < vs["sensitivity"] <= 1
    assert stats["stubs_dropped"] >= 0


def _raw_copy(cfg: Config) -> Path:
    import_raw(cfg)
    return cfg.path("raw")


def test_unreadable_record_fails_the_build_naming_the_file(cfg_smoke: Config) -> None:
    raw = _raw_copy(cfg_smoke)
    dat = raw / "mitdb" / "209.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"mitdb/209\.dat: (truncated|unreadable)"):
        build_task(cfg_smoke, "mitbih")
    assert not table_path(cfg_smoke, "mitbih").exists()


def test_failed_build_keeps_the_previous_table(cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory()
    _raw_copy(cfg)
    path = save_table(cfg, "ptb", *collect(cfg, "ptb"))
    before = path.read_bytes(), summary_path(cfg, "ptb").read_bytes()
    strict = cfg_smoke_factory(validation={"min_rows": {"ptb": 10_000}})
    with pytest.raises(ValidationFailed, match="ptb.parquet"):
        build_task(strict, "ptb")
    assert (path.read_bytes(), summary_path(cfg, "ptb").read_bytes()) == before
    assert not list(path.parent.glob(".ptb*"))  # no temporary files left


def test_record_without_beats_is_skipped_and_counted(cfg_smoke: Config) -> None:
    raw = _raw_copy(cfg_smoke)
    folder = raw / "ptbdb-sample" / "patient999"
    folder.mkdir()
    flat = np.zeros((10000, 1))
    wfdb.wrsamp(
        "s9999_re", fs=1000, units=["mV"], sig_name=["ii"], p_signal=flat, fmt=["16"],
        adc_gain=[2000.0], baseline=[0], comments=["Reason for admission: Healthy control"],
        write_dir=str(folder),
    )  # fmt: skip
    records = raw / "ptbdb-sample" / "RECORDS"
    records.write_text(records.read_text() + "patient999/s9999_re\n")
    df, summary = collect(cfg_smoke, "ptb")
    assert "patient999/s9999_re" not in set(df["record"])
    assert summary["per_source"]["ptbdb"]["no_beats"] == ["patient999/s9999_re"]
    assert summary["per_source"]["ptbdb"]["used"] == 2


def test_missing_raw_folders_say_what_to_run(cfg_smoke: Config) -> None:
    with pytest.raises(DataError, match=r"no source folder for task ptb .*import-raw"):
        build_task(cfg_smoke, "ptb")


def test_only_present_ptb_sources_are_used(cfg_smoke: Config) -> None:
    raw = _raw_copy(cfg_smoke)
    shutil.rmtree(raw / "ptbxl")
    df, summary = collect(cfg_smoke, "ptb")
    assert set(df["source"]) == {"ptbdb"} and list(summary["per_source"]) == ["ptbdb"]


def test_record_repeating_another_is_left_out(cfg_smoke: Config) -> None:
    raw = _raw_copy(cfg_smoke)
    src, dst = raw / "ptbdb-sample" / "patient205", raw / "ptbdb-sample" / "patient999"
    dst.mkdir()
    shutil.copyfile(src / "s0426_re.dat", dst / "s0999_re.dat")
    (dst / "s0999_re.hea").write_text((src / "s0426_re.hea").read_text().replace("s0426", "s0999"))
    records = raw / "ptbdb-sample" / "RECORDS"
    records.write_text(records.read_text() + "patient999/s0999_re\n")
    df, summary = collect(cfg_smoke, "ptb")
    assert "patient999/s0999_re" not in set(df["record"])
    dups = summary["per_source"]["ptbdb"]["duplicates"]
    assert dups == {"patient999/s0999_re": "ptbdb/patient205/s0426_re"}
