"""RR context of beats: known intervals of real annotated records, boundaries, look-ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgops.config import Config, RhythmConfig
from ecgops.data.build import beats_frame, table_path
from ecgops.data.kaggle import write_kaggle_csv
from ecgops.data.rhythm import rr_context
from ecgops.data.sources import mitdb
from ecgops.data.validation import validate_beats
from ecgops.errors import DataError, ValidationFailed
from ecgops.schema import (
    CONTEXT_COLUMNS,
    POSITION_COLUMNS,
    SIGNAL_COLUMNS,
    context,
    has_context,
)

MITDB = Path(__file__).resolve().parents[1] / "fixtures" / "raw" / "mitdb"
RECORDS = ["104", "114", "200", "208", "209", "213", "232"]
TOL = 1e-9


def settings(cfg: Config, **changes: object) -> RhythmConfig:
    """The configured rhythm settings with some fields changed."""
    return cfg.data.rhythm.model_copy(update=changes)


def annotated(record: str, symbols: set[str]) -> tuple[np.ndarray, float]:
    """Samples of the beat annotations of a fixture record (wfdb directly) and its rate."""
    ann = wfdb.rdann(str(MITDB / record), "atr")
    keep = np.isin(np.asarray(ann.symbol), sorted(symbols))
    return np.asarray(ann.sample)[keep], float(ann.fs)


def rr_symbols(cfg: Config) -> set[str]:
    classified = {s for group in cfg.data.mitbih.beat_symbols.values() for s in group}
    return classified | set(cfg.data.mitbih.rr_symbols)


@pytest.mark.parametrize("record", ["208", "232"])
def test_intervals_are_the_annotated_ones(cfg_smoke: Config, record: str) -> None:
    peaks, fs = annotated(record, rr_symbols(cfg_smoke))
    known = np.diff(peaks) / fs  # seconds between consecutive annotated beats
    ctx = rr_context(peaks, fs, settings(cfg_smoke, long_window_s=None, look_ahead=True))

    assert list(ctx.columns) == CONTEXT_COLUMNS and len(ctx) == len(peaks)
    assert not ctx.isna().any().any() and (ctx.to_numpy() > 0).all()
    np.testing.assert_allclose(ctx["rr_prev"].to_numpy()[1:], known, atol=TOL)
    np.testing.assert_allclose(ctx["rr_next"].to_numpy()[:-1], known, atol=TOL)
    assert ctx["rr_prev"].iloc[0] == pytest.approx(known[0])  # first beat: first interval
    assert ctx["rr_next"].iloc[-1] == pytest.approx(known[-1])
    k = cfg_smoke.data.rhythm.local_beats
    for i in (1, 5, k, k + 1, len(peaks) // 2, len(peaks) - 1):
        assert ctx["rr_local"].iloc[i] == pytest.approx(known[max(0, i - k) : i].mean())
    np.testing.assert_allclose(ctx["rr_mean"], known.mean(), atol=TOL)  # whole record
    np.testing.assert_allclose(ctx["rr_prev_ratio"], ctx["rr_prev"] / ctx["rr_local"])
    np.testing.assert_allclose(ctx["rr_prev_next_ratio"], ctx["rr_prev"] / ctx["rr_next"])
    np.testing.assert_allclose(ctx["rr_local_mean_ratio"], ctx["rr_local"] / ctx["rr_mean"])


def test_running_window_mean_matches_brute_force(cfg_smoke: Config) -> None:
    peaks, fs = annotated("208", rr_symbols(cfg_smoke))
    t, known = peaks / fs, np.diff(peaks) / fs
    w = 20.0
    centred = rr_context(peaks, fs, settings(cfg_smoke, long_window_s=w, look_ahead=True))
    causal = rr_context(peaks, fs, settings(cfg_smoke, long_window_s=w, look_ahead=False))
    for i in (0, 3, 40, len(peaks) // 2, len(peaks) - 1):
        ends = t[1:]  # interval k ends at beat k + 1
        inside = (ends >= t[i] - w / 2) & (ends <= t[i] + w / 2)
        assert centred["rr_mean"].iloc[i] == pytest.approx(known[inside].mean())
        before = (ends > t[i] - w) & (ends <= t[i])
        expected = known[before].mean() if before.any() else known[0]
        assert causal["rr_mean"].iloc[i] == pytest.approx(expected)


def test_without_look_ahead_no_feature_depends_on_later_beats(cfg_smoke: Config) -> None:
    peaks, fs = annotated("213", rr_symbols(cfg_smoke))
    for long_window_s in (None, 60.0):
        cfg = settings(cfg_smoke, long_window_s=long_window_s, look_ahead=False)
        full = rr_context(peaks, fs, cfg)
        np.testing.assert_array_equal(full["rr_next"], full["rr_prev"])  # filled, not computed
        assert (full["rr_prev_next_ratio"] == 1.0).all()
        cut = len(peaks) // 2
        prefix = rr_context(peaks[:cut], fs, cfg)
        pd.testing.assert_frame_equal(prefix, full.iloc[:cut])
    ahead = rr_context(peaks, fs, settings(cfg_smoke, look_ahead=True))
    prefix = rr_context(peaks[:cut], fs, settings(cfg_smoke, look_ahead=True))
    assert not np.allclose(prefix["rr_next"].iloc[-1], ahead["rr_next"].iloc[cut - 1])


def test_odd_peaks(cfg_smoke: Config) -> None:
    rhythm = cfg_smoke.data.rhythm
    assert rr_context(np.array([100]), 360.0, rhythm).isna().all().all()  # no interval at all
    assert len(rr_context(np.array([], dtype=np.int64), 360.0, rhythm)) == 0
    with pytest.raises(ValueError, match="strictly increasing"):
        rr_context(np.array([10, 300, 300, 600]), 360.0, rhythm)
    with pytest.raises(ValueError, match="sampling rate"):
        rr_context(np.array([10, 300]), 0.0, rhythm)


def test_record_rows_keep_positions_and_context_of_all_beats(cfg_smoke: Config) -> None:
    rec = mitdb.record_beats(cfg_smoke, MITDB / "208")
    ctx = rec.context
    assert ctx is not None and len(ctx) == len(rec.beats)
    assert list(ctx.columns) == POSITION_COLUMNS + CONTEXT_COLUMNS
    every, fs = annotated("208", rr_symbols(cfg_smoke))
    ann = wfdb.rdann(str(MITDB / "208"), "atr")
    symbol = dict(zip(ann.sample, ann.symbol, strict=True))
    mapping = mitdb.symbol_labels(cfg_smoke.data.mitbih.beat_symbols)
    sample = ctx["sample"].to_numpy()
    assert ctx["sample"].dtype == np.int64 and np.all(np.diff(sample) > 0)
    assert [mapping[symbol[s]] for s in sample] == rec.labels.tolist()  # row's own beat
    np.testing.assert_allclose(ctx["time_s"], sample / fs)
    pos = np.searchsorted(every, sample)  # each row's index among all annotated beats
    assert np.array_equal(every[pos], sample) and pos[0] == 0  # 208 starts with a row
    known = np.diff(every) / fs
    prev = known[np.maximum(pos - 1, 0)]  # the first beat takes the first interval
    nxt = known[np.minimum(pos, len(known) - 1)]
    np.testing.assert_allclose(ctx["rr_prev"], prev, atol=TOL)
    np.testing.assert_allclose(ctx["rr_next"], nxt, atol=TOL)


def test_unclassified_beats_are_neighbours_but_not_rows(cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory(data={"mitbih": {"beat_symbols": {"F": []}}})
    rec = mitdb.record_beats(cfg, MITDB / "208")  # F beats: context only, no rows
    every, fs = annotated("208", rr_symbols(cfg))
    ann = wfdb.rdann(str(MITDB / "208"), "atr")
    fusion = np.asarray(ann.sample)[np.asarray(ann.symbol) == "F"]
    rows = rec.context["sample"].to_numpy()
    assert len(fusion) and not np.isin(fusion, rows).any()
    pos = np.searchsorted(every, rows)
    before_fusion = np.isin(every[np.minimum(pos + 1, len(every) - 1)], fusion)
    assert before_fusion.sum() >= 5  # rows whose next beat is an unclassified F beat
    known = np.diff(every) / fs
    np.testing.assert_allclose(rec.context["rr_next"], known[np.minimum(pos, len(known) - 1)])


def test_records_do_not_share_intervals(smoke_data: Config) -> None:
    df = pd.read_parquet(table_path(smoke_data, "mitbih"))
    symbols = rr_symbols(smoke_data)
    for record, rows in df.groupby("record", sort=False):
        every, fs = annotated(str(record), symbols)
        first = rows["sample"].to_numpy() == every[0]
        # a record's first beat takes its own first interval, never a gap to the last record
        assert np.allclose(rows.loc[first, "rr_prev"], (every[1] - every[0]) / fs)
        assert rows["rr_prev"].max() <= (every[-1] - every[0]) / fs
        rec = mitdb.record_beats(smoke_data, MITDB / str(record))
        np.testing.assert_allclose(rows[CONTEXT_COLUMNS], rec.context[CONTEXT_COLUMNS])


def test_built_mitbih_table_has_context_and_ptb_does_not(smoke_data: Config) -> None:
    mit = pd.read_parquet(table_path(smoke_data, "mitbih"))
    assert has_context(mit)
    assert list(mit.columns[5:7]) == POSITION_COLUMNS
    assert list(mit.columns[-len(CONTEXT_COLUMNS) :]) == CONTEXT_COLUMNS
    assert all(mit[c].dtype == np.float32 for c in SIGNAL_COLUMNS)
    assert context(mit).shape == (len(mit), len(CONTEXT_COLUMNS))
    ptb = pd.read_parquet(table_path(smoke_data, "ptb"))
    assert not has_context(ptb)
    with pytest.raises(ValueError, match="without RR context.*Kaggle"):
        context(ptb)
    assert not has_context(mit.assign(rr_next=np.nan))


def test_context_tables_validate_and_bad_context_fails(smoke_data: Config) -> None:
    mit = pd.read_parquet(table_path(smoke_data, "mitbih"))
    report = validate_beats(mit, "mitbih", smoke_data, "mitbih.parquet")
    assert report.success
    in_samples = mit.assign(rr_prev=mit["rr_prev"] * 360)  # a unit error: samples, not s
    with pytest.raises(ValidationFailed, match=r"rr_prev within data.rhythm.valid_rr_s"):
        validate_beats(in_samples, "mitbih", smoke_data, "mitbih.parquet")
    with pytest.raises(ValidationFailed, match=r"missing columns \[rr_local"):
        validate_beats(mit.drop(columns=["rr_local"]), "mitbih", smoke_data, "m.parquet")
    holes = mit.copy()
    holes.loc[3, "rr_next_ratio"] = np.nan
    with pytest.raises(ValidationFailed, match="every row has a rr_next_ratio"):
        validate_beats(holes, "mitbih", smoke_data, "m.parquet")


def test_context_tables_export_to_the_kaggle_layout(smoke_data: Config, tmp_path: Path) -> None:
    mit = pd.read_parquet(table_path(smoke_data, "mitbih")).head(20)
    path = write_kaggle_csv(mit, tmp_path / "mitbih_test.csv")
    rows = np.loadtxt(path, delimiter=",")
    assert rows.shape == (20, len(SIGNAL_COLUMNS) + 1)
    np.testing.assert_allclose(rows[:, :-1], mit[SIGNAL_COLUMNS], atol=1e-6)


def test_mixed_context_records_are_refused(cfg_smoke: Config) -> None:
    with_ctx = mitdb.record_beats(cfg_smoke, MITDB / "208")
    without = mitdb.record_beats(cfg_smoke, MITDB / "232")
    without.context = None
    with pytest.raises(ValueError, match="some records carry RR context"):
        beats_frame([with_ctx, without], cfg_smoke.data.beat_len)


def test_two_beats_at_one_sample_name_the_file(cfg_smoke: Config, tmp_path: Path) -> None:
    ann = wfdb.rdann(str(MITDB / "232"), "atr")
    sample, symbol = np.asarray(ann.sample), np.asarray(ann.symbol)
    beat = np.flatnonzero(np.isin(symbol, sorted(rr_symbols(cfg_smoke))))
    sample[beat[5]] = sample[beat[4]]
    wfdb.wrann("232", "atr", sample, symbol, write_dir=str(tmp_path), fs=ann.fs)
    for ext in ("hea", "dat"):
        (tmp_path / f"232.{ext}").write_bytes((MITDB / f"232.{ext}").read_bytes())
    with pytest.raises(DataError, match=r"232\.atr: R-peaks must be strictly increasing"):
        mitdb.record_beats(cfg_smoke, tmp_path / "232")
