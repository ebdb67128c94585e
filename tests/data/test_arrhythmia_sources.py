"""Another beat-annotated WFDB database as a MIT-BIH-task source, by configuration only.

The second database is a real cut of MIT-BIH record 233 (first 60 s) resampled to 128 Hz with
leads renamed ECG1/ECG2 and its ``.atr`` resampled (``tests/fixtures/raw/annotate``,
``scripts/make_fixtures.py::make_annotate``), laid out as a database folder with ``RECORDS``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from conftest import smoke_config

from ecgops.config import Config
from ecgops.data.build import build_task, collect
from ecgops.data.raw import import_raw
from ecgops.data.sources import SourceReport, mitdb
from ecgops.data.splits import assign_splits
from ecgops.data.validation import validate_beats
from ecgops.data.wfdb_io import Annotations
from ecgops.errors import DataError
from ecgops.schema import SIGNAL_COLUMNS, true_lengths

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"
CUT = "mit233_128hz"
NAME = "db128"  # the source's name and its folder under the raw source
FS = 128


def extra_source(leads: list[str]) -> dict:
    """``data`` overrides that add the 128 Hz database as a second ``mitbih`` source."""
    return {
        "raw_folders": {NAME: NAME},
        "mitbih_sources": ["mitdb", NAME],
        "arrhythmia_sources": {NAME: {"leads": leads, "fallback_channel": 0, "annotator": "atr"}},
    }


@pytest.fixture(scope="module")
def raw_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw source folder: the MIT-BIH fixture records and the 128 Hz database."""
    src = tmp_path_factory.mktemp("source")
    shutil.copytree(RAW / "mitdb", src / "mitdb")
    (src / NAME).mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copy(RAW / "annotate" / f"{CUT}.{ext}", src / NAME)
    (src / NAME / "RECORDS").write_text(f"{CUT}\n")
    return src


def make_cfg(workdir: Path, raw_source: Path, **splits: str) -> Config:
    """Smoke config reading ``raw_source``, with the 128 Hz source (leads MLII, else ECG1)."""
    return smoke_config(
        workdir,
        paths={"raw_source": str(raw_source)},
        data=extra_source(["MLII", "ECG1"]),
        splits=splits,
    )


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, raw_source: Path
) -> tuple[Config, pd.DataFrame, dict, str]:
    """The ``mitbih`` table built (and validated) from both sources; the build's log."""
    cfg = make_cfg(tmp_path_factory.mktemp("work"), raw_source)
    import_raw(cfg)
    handler = _Capture()
    logger = logging.getLogger("ecgops.data.sources.mitdb")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        path = build_task(cfg, "mitbih")  # validates (GX) before writing
    finally:
        logger.removeHandler(handler)
    df = pd.read_parquet(path)
    _, summary = collect(cfg, "mitbih")
    return cfg, df, summary, "\n".join(handler.lines)


class _Capture(logging.Handler):
    """Collect formatted log lines (module-scoped fixtures cannot use ``caplog``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def reference(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classified beats' samples and labels of the cut's ``.atr``, and every beat's sample."""
    ann = wfdb.rdann(str(RAW / "annotate" / CUT), "atr")
    annotations = Annotations(np.asarray(ann.sample), np.asarray(ann.symbol, dtype=object), FS)
    mapping = mitdb.symbol_labels(cfg.data.mitbih.beat_symbols)
    samples, labels, _, every = mitdb.annotated_beats(
        annotations, mapping, cfg.data.mitbih.rr_symbols
    )
    return samples, labels, every


def test_both_sources_feed_the_task_with_unique_ids(built) -> None:
    _, df, summary, _ = built
    assert set(df["source"]) == {"mitdb", NAME}
    extra = df[df["source"] == NAME]
    assert set(extra["record"]) == {f"{NAME}/{CUT}"}  # no clash with MIT-BIH's record ids
    assert (extra["patient"] == extra["record"]).all()
    assert set(df.loc[df["source"] == "mitdb", "record"]) == {
        "104",
        "114",
        "200",
        "208",
        "209",
        "213",
        "232",
    }
    assert summary["per_source"][NAME]["beats"] == len(extra) > 50
    assert summary["per_source"][NAME]["leads"] == {"ECG1": 1}
    assert summary["settings"]["sources"] == ["mitdb", NAME]


def test_lead_by_configured_name_and_logged(built) -> None:
    _, _, summary, log_text = built
    assert f"{CUT}: lead ECG1 (channel 0) at 128 Hz" in log_text
    assert summary["per_source"][NAME]["fallback_lead"] == {}  # ECG1 is a configured name
    assert "208: lead MLII (channel 0) at 360 Hz" in log_text


def test_samples_are_the_atr_positions_at_the_source_rate(built) -> None:
    cfg, df, _, _ = built
    extra = df[df["source"] == NAME]
    samples, labels, _ = reference(cfg)
    assert np.isin(extra["sample"], samples).all()
    hit = np.searchsorted(samples, extra["sample"].to_numpy())
    np.testing.assert_array_equal(extra["label"].to_numpy(), labels[hit])
    np.testing.assert_allclose(extra["time_s"], extra["sample"] / FS)
    # all classified beats but those in the window-end stubs are rows
    assert len(extra) >= 0.9 * len(samples)


def test_beats_are_125_hz_rows_like_mitdb(built) -> None:
    cfg, df, _, _ = built
    extra = df[df["source"] == NAME]
    x = extra[SIGNAL_COLUMNS].to_numpy()
    assert x.shape[1] == cfg.data.beat_len == 187 and x.min() >= 0 and x.max() <= 1
    # a beat spans period_factor x the window's median RR, in samples at data.fs (125 Hz:
    # 86.7 expected, 86 measured; rows left at 128 Hz would be about 2 samples longer)
    expected = cfg.data.period_factor * np.median(extra["rr_prev"]) * cfg.data.fs
    assert abs(np.median(true_lengths(x)) - expected) < 1.0


def test_rr_context_in_seconds_at_the_source_rate(built) -> None:
    cfg, df, _, _ = built
    extra = df[df["source"] == NAME]
    _, _, every = reference(cfg)
    at = np.searchsorted(every, extra["sample"].to_numpy())
    inner = (at > 0) & (at < len(every) - 1)
    np.testing.assert_allclose(
        extra["rr_prev"].to_numpy()[inner], (every[at] - every[at - 1])[inner] / FS
    )
    np.testing.assert_allclose(
        extra["rr_next"].to_numpy()[inner], (every[at + 1] - every[at])[inner] / FS
    )


def test_splits_keep_ds1_ds2_and_place_the_extra_source(built, raw_source, tmp_path) -> None:
    cfg, df, _, _ = built
    own = df["source"] == "mitdb"
    alone = assign_splits(df[own].reset_index(drop=True), cfg, "mitbih")
    default = assign_splits(df, cfg, "mitbih")  # splits.extra_sources: exclude
    for scheme in ("beat", "patient"):
        np.testing.assert_array_equal(default.loc[own, scheme], alone[scheme])
        assert (default.loc[~own, scheme] == "unused").all()
    as_test = assign_splits(df, make_cfg(tmp_path, raw_source, extra_sources="test"), "mitbih")
    for scheme in ("beat", "patient"):
        np.testing.assert_array_equal(as_test.loc[own, scheme], alone[scheme])
        assert (as_test.loc[~own, scheme] == "test").all()
    as_train = assign_splits(df, make_cfg(tmp_path, raw_source, extra_sources="train"), "mitbih")
    assert set(as_train.loc[~own, "patient"]) <= {"train", "val"}
    ds2 = df["record"].isin(cfg.data.mitbih.ds2)
    np.testing.assert_array_equal(as_train.loc[ds2, "patient"], alone.loc[ds2[own], "patient"])


def test_validation_passes(built) -> None:
    cfg, df, _, _ = built
    validate_beats(df, "mitbih", cfg, "arrhythmia sources table")


def test_no_configured_lead_falls_back_and_reports(raw_source: Path, tmp_path: Path) -> None:
    cfg = smoke_config(tmp_path, paths={"raw_source": str(raw_source)}, data=extra_source(["V1"]))
    report = SourceReport(NAME, raw_source / NAME)
    rec = mitdb.record_beats(cfg, raw_source / NAME / CUT, report, NAME)
    assert rec.record == f"{NAME}/{CUT}" and len(rec.beats) > 0
    assert report.fallback_lead == {CUT: "ECG1"}


def test_bad_source_configuration_is_refused(tmp_path: Path, raw_source: Path) -> None:
    with pytest.raises(ValueError, match="not in data.arrhythmia_sources"):
        smoke_config(tmp_path, data={"raw_folders": {NAME: NAME}, "mitbih_sources": [NAME]})
    with pytest.raises(ValueError, match="'other' has no data.raw_folders entry"):
        smoke_config(tmp_path, data={**extra_source(["ECG1"]), "mitbih_sources": ["other"]})
    cfg = smoke_config(tmp_path, data=extra_source(["ECG1"]))
    with pytest.raises(DataError, match="unknown arrhythmia source"):
        mitdb.source_settings(cfg, "other")
