"""Record R-peak detectors on the real fixtures: a dominant spike, baseline wander, 1000 Hz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import rpeaks as rp
from ecgops.data import wfdb_io
from ecgops.data.multilead import read_leads
from ecgops.errors import DataError

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"
PTBXL_RECORD = RAW / "ptbxl" / "records500" / "00000" / "00008_hr"
PTBDB_RECORD = RAW / "ptbdb-sample" / "patient205" / "s0426_re"


def lead_ii(record: Path) -> tuple[np.ndarray, float]:
    lead = wfdb_io.read_lead(record, "II")
    return lead.signal, lead.fs


def n_beats(signal: np.ndarray, fs: float, cfg: Config, method: str) -> int:
    found = rp.detect_record_peaks(signal, fs, cfg.rpeaks, cfg.data, method=method)
    return len(rp.segment_record(wfdb_io.resample(signal, fs, cfg.data.fs), found.peaks, cfg.data))


def test_xqrs_matches_its_own_heart_rate_on_a_clean_record(cfg_smoke: Config) -> None:
    signal, fs = lead_ii(PTBXL_RECORD)
    found = rp.detect_record_peaks(signal, fs, cfg_smoke.rpeaks, cfg_smoke.data)
    hr = bt.reference_heart_rate(signal, fs)
    assert found.method == "xqrs" and hr is not None
    assert abs(len(found.peaks) - hr * len(signal) / fs / 60) <= 1
    assert n_beats(signal, fs, cfg_smoke, "study") > 0  # the study's rule works here too


def test_xqrs_runs_at_detect_fs_on_1000_hz_records(cfg_smoke: Config) -> None:
    signal, fs = lead_ii(PTBDB_RECORD)
    assert fs == 1000
    assert len(rp.xqrs_peaks(signal, fs, detect_fs=fs)) == 0  # XQRS alone at 1000 Hz: nothing
    peaks = rp.xqrs_peaks(signal, fs, cfg_smoke.rpeaks.detect_fs)
    rr = np.diff(peaks) / fs
    assert len(peaks) >= 8 and 0.3 < np.median(rr) < 1.5
    found = rp.detect_record_peaks(signal, fs, cfg_smoke.rpeaks, cfg_smoke.data)
    assert found.method == "xqrs" and len(found.peaks) >= 8


def test_a_dominant_spike_empties_the_study_rule_but_not_xqrs(cfg_smoke: Config) -> None:
    signal, fs = lead_ii(PTBXL_RECORD)
    spiked = signal.copy()
    spiked[int(5.02 * fs) : int(5.02 * fs) + 3] += 15.0  # one artefact, 15 mV
    assert n_beats(spiked, fs, cfg_smoke, "study") == 0
    clean = n_beats(signal, fs, cfg_smoke, "xqrs")
    assert n_beats(spiked, fs, cfg_smoke, "xqrs") >= clean - 2


def test_baseline_wander_costs_the_study_rule_beats_but_not_xqrs(cfg_smoke: Config) -> None:
    signal, fs = lead_ii(PTBXL_RECORD)
    drift = signal + 0.3 * np.arange(len(signal)) / fs  # 3 mV over the 10 s record
    assert n_beats(drift, fs, cfg_smoke, "study") < n_beats(signal, fs, cfg_smoke, "study")
    assert n_beats(drift, fs, cfg_smoke, "xqrs") == n_beats(signal, fs, cfg_smoke, "xqrs") >= 10


def test_multilead_vote_agrees_with_lead_ii(cfg_smoke: Config) -> None:
    rec = read_leads(PTBXL_RECORD, ["I", "II", "V1"])
    voted = rp.detect_record_peaks(rec.signals, rec.fs, cfg_smoke.rpeaks, cfg_smoke.data, 1,
                                   method="xqrs_vote")  # fmt: skip
    single = rp.detect_record_peaks(rec.signals, rec.fs, cfg_smoke.rpeaks, cfg_smoke.data, 1)
    assert voted.method == "xqrs_vote"
    assert bt.match_peaks(voted.peaks, single.peaks, tolerance=2) >= len(single.peaks) - 1


def test_vote_peaks_counts_each_lead_once() -> None:
    leads = [np.array([100, 300, 500]), np.array([102, 505]), np.array([98, 101, 700])]
    np.testing.assert_array_equal(rp.vote_peaks(leads, tolerance=5, min_votes=2), [100, 502])
    np.testing.assert_array_equal(rp.vote_peaks(leads, tolerance=5, min_votes=3), [100])
    assert len(rp.vote_peaks([np.array([1]), np.array([1])], tolerance=0, min_votes=3)) == 0


def test_refine_peaks_moves_to_the_local_maximum() -> None:
    x = np.zeros(50)
    x[[10, 30]] = 1.0
    x[33] = 2.0
    np.testing.assert_array_equal(rp.refine_peaks(x, np.array([8, 31]), 3, "up"), [10, 33])
    np.testing.assert_array_equal(rp.refine_peaks(-x, np.array([8]), 3, "abs"), [10])
    np.testing.assert_array_equal(rp.refine_peaks(x, np.array([8, 8]), 0, "up"), [8])


def test_a_flat_record_has_no_usable_beat_and_says_so(cfg_smoke: Config) -> None:
    flat = np.full(5000, 0.1)
    found = rp.detect_record_peaks(flat, 500.0, cfg_smoke.rpeaks, cfg_smoke.data)
    assert found.method == cfg_smoke.rpeaks.method and len(found.peaks) == 0
    seg = rp.segment_record(wfdb_io.resample(flat, 500, cfg_smoke.data.fs), found.peaks,
                            cfg_smoke.data)  # fmt: skip
    with pytest.raises(DataError, match="rec-1: no usable beat: the xqrs detector"):
        rp.require_beats(seg, "rec-1", len(found.peaks), found.method)


def test_unknown_method_is_refused(cfg_smoke: Config) -> None:
    with pytest.raises(ValueError, match="unknown R-peak method 'pan'"):
        rp.detect_record_peaks(np.zeros(10), 500.0, cfg_smoke.rpeaks, cfg_smoke.data, method="pan")
