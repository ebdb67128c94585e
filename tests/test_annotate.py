"""``ecgops annotate`` on real fixture records with a real small model (tests/fixtures_annotate.py).

Records: the 128 Hz cut of MIT-BIH 233 with leads ECG1/ECG2 (another database's layout), a
360 Hz cut of 119 without annotations (detector path), MIT-BIH 208 (360 Hz, MLII), and a 5 s
cut of 208 (no full 10 s window: no beats).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from fixtures_annotate import CLASSES, RAW, REC_128, REC_PLAIN, annotation_model, run_cli

from ecgops.data import wfdb_io
from ecgops.prediction.stream import choose_lead, chunk_plan, resampled_chunk

__all__ = ["annotation_model"]  # the session fixture, used by name

COLUMNS = ["record", "sample", "time_s", "pred", "pred_name"] + [f"p_{j}" for j in range(5)]
SHORT_S = 5


def _annotate(records: list[Path], out: Path, tracking: str, uri: str, *flags: str):
    args = ["annotate", "--task", "mitbih", "--out-dir", str(out), "--model", uri, *flags]
    for r in records:
        args += ["--record", str(r)]
    return run_cli(args, tracking)


def _beat_samples(record: Path) -> np.ndarray:
    from ecgops.config import load_config
    from ecgops.data.sources.mitdb import beat_annotations, symbol_labels

    cfg = load_config(profile="smoke")
    ann = wfdb_io.read_annotations(record, "atr")
    return beat_annotations(ann, symbol_labels(cfg.data.mitbih.beat_symbols))[0]


def test_reference_peaks_on_the_128_hz_record(annotation_model, tmp_path) -> None:
    uri, tracking = annotation_model
    result = _annotate([REC_128], tmp_path, tracking, uri, "--reference-peaks")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / f"{REC_128.name}.csv")
    assert list(df.columns) == COLUMNS
    ref = _beat_samples(REC_128)
    # one row per annotated beat, except those of the last partial window / stubs
    assert 0.85 * len(ref) <= len(df) <= len(ref)
    assert set(df["sample"]).issubset(set(ref))  # at the record's own 128 Hz
    np.testing.assert_allclose(df["time_s"], df["sample"] / 128.0, atol=1e-5)
    assert df["record"].eq(REC_128.name).all()
    assert df["pred"].between(0, 4).all()
    assert (df["pred_name"] == np.asarray(CLASSES)[df["pred"]]).all()
    np.testing.assert_allclose(df[[f"p_{j}" for j in range(5)]].sum(axis=1), 1.0, atol=1e-4)
    ann = wfdb.rdann(str(tmp_path / REC_128.name), "ecgops")
    assert ann.fs == 128
    np.testing.assert_array_equal(ann.sample, df["sample"])
    assert list(ann.symbol) == list(df["pred_name"])
    entry = json.loads((tmp_path / "annotate_summary.json").read_text())["records"][0]
    assert (entry["lead"], entry["lead_choice"]) == ("ECG1", "fallback lead name")
    assert entry["peaks"] == "reference" and entry["beats"] == len(df)


def test_detector_path_on_a_record_without_annotations(annotation_model, tmp_path) -> None:
    uri, tracking = annotation_model
    result = _annotate([REC_PLAIN], tmp_path, tracking, uri)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / f"{REC_PLAIN.name}.csv")
    assert list(df.columns) == COLUMNS
    # 60 s of record 119 hold 65 annotated beats (in the original .atr): XQRS finds them
    assert 55 <= len(df) <= 66
    assert df["sample"].is_monotonic_increasing and df["sample"].max() < 60 * 360
    assert json.loads(result.stdout)["records"][0]["peaks"] == "xqrs"
    assert len(wfdb.rdann(str(tmp_path / REC_PLAIN.name), "ecgops").sample) == len(df)

    refused = _annotate([REC_PLAIN], tmp_path / "ref", tracking, uri, "--reference-peaks")
    assert refused.exit_code != 0
    assert "annotation file not found" in str(refused.exception)


def test_record_without_beats_gets_a_message(annotation_model, tmp_path) -> None:
    uri, tracking = annotation_model
    rec = wfdb.rdrecord(str(RAW / "mitdb" / "208"), sampto=SHORT_S * 360)
    wfdb.wrsamp("short208", fs=rec.fs, units=rec.units, sig_name=rec.sig_name,
                p_signal=rec.p_signal, fmt=rec.fmt, adc_gain=rec.adc_gain,
                baseline=rec.baseline, write_dir=str(tmp_path))  # fmt: skip
    out = tmp_path / "out"
    result = _annotate([tmp_path / "short208"], out, tracking, uri)
    assert result.exit_code == 0, result.output
    assert "short208: no beats to annotate" in result.stderr
    assert "shorter than one 10 s window" in result.stderr
    assert list(pd.read_csv(out / "short208.csv").columns) == COLUMNS
    assert not (out / "short208.ecgops").exists()


def test_chunks_lose_and_duplicate_no_beat(annotation_model, cfg_smoke_factory, tmp_path) -> None:
    """Small chunks (2 windows) give the same rows as one chunk, and as many as training."""
    from ecgops.data.sources.mitdb import record_beats
    from ecgops.prediction.annotate import annotate_records

    uri, tracking = annotation_model
    record = RAW / "mitdb" / "208"
    frames = []
    for chunk_s in (20, 600):
        cfg = cfg_smoke_factory(tracking={"uri": tracking}, annotate={"chunk_s": chunk_s})
        out = tmp_path / str(chunk_s)
        annotate_records(cfg, "mitbih", [record], out, reference_peaks=True, model_uri=uri,
                         progress=False)  # fmt: skip
        frames.append(pd.read_csv(out / "208.csv"))
    pd.testing.assert_frame_equal(frames[0], frames[1], atol=1e-5)
    assert len(frames[0]) == len(record_beats(cfg, record).beats)


@pytest.mark.parametrize("record", [RAW / "mitdb" / "208", REC_128])
def test_chunked_resampling_equals_the_whole_record(cfg_smoke_factory, record) -> None:
    cfg = cfg_smoke_factory(annotate={"chunk_s": 20})
    header = wfdb.rdheader(str(record))
    lead = choose_lead(header.sig_name, cfg, record)
    whole = wfdb_io.resample(
        wfdb_io.read_lead(record, header.sig_name[lead.channel]).signal, header.fs, cfg.data.fs
    )
    plan = chunk_plan(cfg, header.fs, header.sig_len)
    assert plan.chunk_out % 1250 == 0 and plan.n_out == len(whole)
    parts = [resampled_chunk(record, lead.channel, plan, a, b) for a, b in plan.chunks()]
    assert len(parts) > 1
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-9)


def test_lead_choice_by_name_then_fallback(cfg_smoke) -> None:
    where = Path("x.hea")
    assert choose_lead(["V1", "MLII"], cfg_smoke, where).channel == 1
    ecg = choose_lead(["ECG1", "ECG2"], cfg_smoke, where)
    assert (ecg.channel, ecg.how) == (0, "fallback lead name")
    other = choose_lead(["A", "B"], cfg_smoke, where)
    assert (other.channel, other.name, other.how[:16]) == (0, "A", "fallback channel")


@pytest.mark.parametrize("use_reference", [True, False])
def test_rhythm_context_for_models_that_need_it(cfg_smoke, use_reference) -> None:
    from ecgops.prediction.annotate import record_peaks
    from ecgops.schema import CONTEXT_COLUMNS

    record = RAW / "mitdb" / "208"
    header = wfdb.rdheader(str(record))
    lead = choose_lead(header.sig_name, cfg_smoke, record)
    args = (cfg_smoke, record, lead, header.fs, header.sig_len, use_reference)
    peaks, context, _ = record_peaks(*args, list(CONTEXT_COLUMNS), False)
    assert list(context.columns) == CONTEXT_COLUMNS and len(context) == len(peaks)
    assert context.notna().all(axis=None)
    rr = np.diff(peaks) / header.fs
    np.testing.assert_allclose(context["rr_prev"].to_numpy()[2:], rr[1:], rtol=0.2)
    assert record_peaks(*args, [], False)[1] is None  # morphology-only: no context computed
