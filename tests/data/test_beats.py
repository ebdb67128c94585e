"""Kachuee et al. (2018) beat extraction: windows, normalisation, R-peaks, length, padding."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import wfdb_io
from ecgops.data.sources.mitdb import beat_annotations, symbol_labels
from ecgops.schema import true_lengths

MITDB = Path(__file__).resolve().parents[1] / "fixtures" / "raw" / "mitdb"


@pytest.fixture
def params(cfg_smoke: Config) -> bt.SegmentParams:
    return bt.SegmentParams.from_config(cfg_smoke.data)


def spikes(n: int, peaks: list[int]) -> np.ndarray:
    """A slow ramp (its only minimum at sample 0), small bumps, and 1.0 at the peaks."""
    x = 0.1 + 0.1 * np.arange(n) / n
    x[np.arange(n) % 7 == 3] += 0.2
    x[peaks] = 1.0
    return x


def test_params_come_from_the_config(params: bt.SegmentParams) -> None:
    assert (params.fs, params.window_len, params.beat_len) == (125, 1250, 187)
    assert params.period_factor == 1.2 and params.min_span == 20


def test_window_starts_drop_or_keep_the_partial_window() -> None:
    assert bt.window_starts(3000, 1250).tolist() == [0, 1250]
    assert bt.window_starts(3000, 1250, keep_partial=True).tolist() == [0, 1250, 2500]
    assert bt.window_starts(2500, 1250, keep_partial=True).tolist() == [0, 1250]


def test_minmax_normalises_to_unit_range_and_rejects_flat() -> None:
    out = bt.minmax_normalise(np.array([-2.0, 0.0, 2.0]))
    assert out.tolist() == [0.0, 0.5, 1.0]
    assert bt.minmax_normalise(np.ones(5)) is None


def test_refractory_distance_merges_runs_of_maxima() -> None:
    w = np.zeros(200)
    w[[50, 53, 56]] = [0.95, 1.0, 0.93]  # one noisy R-peak split into three maxima
    w[150] = 0.97
    assert bt.detect_r_peaks(w, 0.9, None).tolist() == [50, 53, 56, 150]
    assert bt.detect_r_peaks(w, 0.9, 25).tolist() == [53, 150]
    assert bt.detect_r_peaks(w, 0.99, 25).tolist() == [53]


def test_beats_are_187_long_in_unit_range_padded_only_at_the_end(params) -> None:
    peaks = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200]
    seg = bt.segment(spikes(1250, peaks), params, peaks=np.array(peaks))
    assert seg.beats.shape == (len(peaks), 187) and seg.beats.dtype == np.float32
    assert seg.beats.min() >= 0.0 and seg.beats.max() <= 1.0
    # T = 100 samples -> 1.2 T = 120 samples of signal, then zeros to 187
    assert seg.span[:-1].tolist() == [120] * (len(peaks) - 1)
    assert np.all(seg.beats[:-1, 120:] == 0) and np.all(seg.beats[:, 0] == 1.0)
    # the last beat runs past the window end: what is there (50 samples), then zeros
    assert seg.span[-1] == 50 and np.all(seg.beats[-1, 50:] == 0)
    assert np.array_equal(true_lengths(seg.beats)[:-1], seg.span[:-1])


def test_long_period_is_cut_to_187(params) -> None:
    peaks = np.array([10, 400, 800])  # T = 390 -> 468 samples, cut to 187
    seg = bt.segment(spikes(1250, list(peaks)), params, peaks=peaks)
    assert seg.span.tolist() == [187, 187, 187]


def test_last_beat_drop_option(params) -> None:
    peaks = np.array([100, 300, 500, 700, 900, 1100, 1200])
    signal = spikes(1250, list(peaks))
    padded = bt.segment(signal, params, peaks=peaks)
    dropped = bt.segment(signal, replace(params, drop_last=True), peaks=peaks)
    assert len(padded) == 7 and len(dropped) == 5  # 1100 + 187 and 1200 + 187 exceed 1250
    assert dropped.peak.tolist() == [100, 300, 500, 700, 900]


def test_windows_with_fewer_than_two_peaks_give_no_beats(params) -> None:
    signal = spikes(2500, [100, 600, 1300])  # window 1 has one peak
    seg = bt.segment(signal, params, peaks=np.array([100, 600, 1300]))
    assert seg.peak.tolist() == [100, 600]
    assert (seg.n_windows, seg.empty_windows) == (2, 1)


def test_flat_window_gives_no_beats(params) -> None:
    seg = bt.segment(np.zeros(2500), params, peaks=np.array([100, 300, 1400, 1600]))
    assert len(seg) == 0 and seg.empty_windows == 2


def test_peaks_are_window_relative_and_ids_index_the_given_peaks(params) -> None:
    peaks = np.array([100, 400, 700, 1300, 1600, 1900])
    seg = bt.segment(spikes(2500, list(peaks)), params, peaks=peaks)
    assert seg.peak.tolist() == peaks.tolist() and seg.peak_id.tolist() == list(range(6))
    # the second window is normalised on its own: its beats start at its own maximum
    assert np.all(seg.beats[:, 0] == 1.0)


def test_detected_peaks_drive_the_same_procedure(cfg_smoke: Config, params) -> None:
    signal = spikes(1250, [100, 300, 500, 700, 900, 1100])
    seg = bt.segment(signal, params, detector=bt.make_detector(cfg_smoke.data))
    assert seg.peak.tolist() == [100, 300, 500, 700, 900, 1100]


def test_drop_stubs_removes_window_end_cuts(params) -> None:
    peaks = np.array([100, 300, 500, 700, 900, 1100, 1240])
    seg = bt.segment(spikes(1250, list(peaks)), params, peaks=peaks)
    assert seg.span[-1] == 10
    kept = bt.drop_stubs(seg, params.min_span)
    assert len(kept) == len(seg) - 1 and kept.span.min() >= params.min_span
    assert bt.drop_stubs(seg, 0) is seg


def test_real_mitbih_record_gives_one_beat_per_annotated_beat(cfg_smoke: Config, params):
    lead = wfdb_io.read_lead(MITDB / "208", "MLII")
    samples, labels = beat_annotations(
        wfdb_io.read_annotations(MITDB / "208", "atr"),
        symbol_labels(cfg_smoke.data.mitbih.beat_symbols),
    )
    peaks = wfdb_io.to_rate(samples, lead.fs, 125)
    signal = wfdb_io.resample(lead.signal, lead.fs, 125)
    seg = bt.segment(signal, params, peaks=peaks)
    in_windows = peaks < seg.n_windows * params.window_len
    assert seg.n_windows == 9 and len(seg) == in_windows.sum()
    assert seg.beats.min() >= 0 and seg.beats.max() <= 1
    assert set(labels[seg.peak_id]) == {0, 2, 3}  # N, V, F


def test_match_peaks_counts_distinct_hits_within_tolerance() -> None:
    assert bt.match_peaks(np.array([10, 12, 50, 90]), np.array([11, 48, 200]), 3) == 2


def test_heart_rate_from_peaks() -> None:
    assert bt.heart_rate_from_peaks(np.array([0, 125, 250, 375]), 125) == pytest.approx(60.0)
    assert bt.heart_rate_from_peaks(np.array([5]), 125) is None


def test_summary_shows_short_beats_and_rate_per_variant() -> None:
    recs = [
        bt.RecordPeakStats(
            "ptbxl", "a", "MI", 10.0, 60.0,
            beats={"refractory": 9, "no_refractory": 20},
            short={"refractory": 0, "no_refractory": 10},
        ),
        bt.RecordPeakStats(
            "ptbxl", "b", "healthy", 10.0, 120.0,
            beats={"refractory": 18, "no_refractory": 18},
            short={"refractory": 0, "no_refractory": 0},
        ),
    ]  # fmt: skip
    out = bt.summarise_peak_stats(recs, [0, 90, 300], "refractory")
    assert list(out["variants"]) == ["refractory", "no_refractory"]
    no_ref = out["variants"]["no_refractory"]
    assert no_ref["short_share"] == round(10 / 38, 4)
    assert no_ref["by_class"]["MI"]["short_share"] == 0.5
    assert no_ref["records_over_1_5x_hr"] == 1  # 20 beats in 10 s at 60 bpm
    bands = out["variants"]["refractory"]["by_heart_rate"]
    assert [b["beats_per_min_mean"] for b in bands] == [54.0, 108.0]
