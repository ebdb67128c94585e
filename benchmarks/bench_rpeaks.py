#!/usr/bin/env python
"""R-peak detectors for whole records, measured on the shared PTB-XL and PTB Diagnostic records.

For every record (all PTB-XL records of ``ptbxl/``, whatever their label, and the PTB
Diagnostic sample), lead II is cut by the study's segmentation
(:func:`ecgops.data.beats.segment`) with the R-peaks of each detector:

- ``study``: the study's rule with its refractory distance (the ``ptb`` table's beats);
- ``study_norefr``: the paper's rule alone (no distance);
- ``study_filtered``, ``xqrs``, ``xqrs_vote``: :mod:`ecgops.data.rpeaks` without fallback;
- ``xqrs+fallback``: the configured method and fallback (what the multi-lead table uses).

Per detector: records with no usable beat (all records, and the labelled MI/NORM records the
``ptb`` task uses), beats, beats per record, beats per minute over the heart rate of wfdb's
``xqrs_detect`` on the raw lead (the statistic of the ``ptb`` summary; circular for the XQRS
detectors, so also: detected peaks per minute over it), records whose beats per minute are
more than 1.5x or less than 0.5x that heart rate, the share of beats shorter than
``data.stats.short_beat_s`` (0.4 s) and seconds per record.

Usage: ``nice .venv/bin/python benchmarks/bench_rpeaks.py [--source DIR] [--max-records N]``
(writes ``outputs/benchmarks/rpeaks.json`` and prints a markdown table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecgops.config import load_config  # noqa: E402
from ecgops.data import beats as bt  # noqa: E402
from ecgops.data import rpeaks as rp  # noqa: E402
from ecgops.data import wfdb_io  # noqa: E402
from ecgops.data.multilead import MissingLeadsError, read_leads  # noqa: E402
from ecgops.data.sources import ptbdb, ptbxl, read_records_file  # noqa: E402

DETECTORS = ["study", "study_norefr", "study_filtered", "xqrs", "xqrs_vote", "xqrs+fallback"]
RATIO_HIGH, RATIO_LOW = 1.5, 0.5


def records(cfg, source: Path, limit: int | None) -> list[tuple[str, Path, str]]:
    """(id, path, class) of every PTB-XL record and PTB Diagnostic sample record."""
    out = []
    folder = source / cfg.data.raw_folders["ptbxl"]
    meta = ptbxl.label_records(cfg, folder)
    names = {0: "NORM", 1: "MI"}
    for ecg_id, row in meta.iterrows():
        label = row["label"]
        held = row["strat_fold"] in cfg.data.ptbxl.holdout_folds
        cls = "other" if held or pd.isna(label) else names[int(label)]
        out.append((f"ptbxl/{ecg_id}", folder / str(row[cfg.data.ptbxl.filename_column]), cls))
    folder = source / cfg.data.raw_folders["ptbdb"]
    for name in read_records_file(folder, "patient*/*.hea"):
        header = wfdb_io.read_header(folder / name)
        lab = ptbdb.reason_label(
            ptbdb.admission_reason(list(header.comments or [])),
            cfg.data.ptbdb.mi_reason,
            cfg.data.ptbdb.healthy_reason,
        )
        out.append((f"ptbdb/{name}", folder / name, {0: "NORM", 1: "MI"}.get(lab, "other")))
    return out[:limit] if limit else out


def measure(cfg, path: Path) -> dict:
    """Beats, short beats, peaks and seconds of each detector on one record's lead II."""
    data = cfg.data
    leads = cfg.rpeaks.vote_leads + [cfg.multilead.peak_lead]
    names = list(dict.fromkeys(name.lower() for name in leads))
    try:
        rec = read_leads(path, names)
    except MissingLeadsError:
        rec = read_leads(path, [cfg.multilead.peak_lead])
        names = [cfg.multilead.peak_lead.lower()]
    peak_row = names.index(cfg.multilead.peak_lead.lower())
    lead_ii = rec.signals[peak_row]
    signal = wfdb_io.resample(lead_ii, rec.fs, data.fs)
    params = bt.SegmentParams.from_config(data)
    out: dict = {"hr": bt.reference_heart_rate(lead_ii, rec.fs), "minutes": 0.0, "det": {}}
    no_fb = cfg.rpeaks.model_copy(update={"fallback": "none"})
    for name in DETECTORS:
        t0 = time.perf_counter()
        if name == "study_norefr":
            seg = bt.segment(signal, params, detector=bt.make_detector(data, refractory=False))
            n_peaks = int(len(seg.peak))
            used = name
        else:
            method = "xqrs" if name == "xqrs+fallback" else name
            conf = cfg.rpeaks if name == "xqrs+fallback" else no_fb
            found = rp.detect_record_peaks(rec.signals, rec.fs, conf, data, peak_row, method)
            seg = bt.segment(signal, params, peaks=found.peaks)
            n_peaks, used = int(len(found.peaks)), found.method
        table = bt.drop_stubs(seg, params.min_span)
        out["minutes"] = seg.n_windows * params.window_len / data.fs / 60.0
        out["det"][name] = {
            "beats": int(len(table)),
            "raw_beats": int(len(seg)),
            "short": bt.count_short(seg.span, data.fs, data.stats.short_beat_s),
            "peaks": n_peaks,
            "used": used,
            "seconds": time.perf_counter() - t0,
        }
    return out


def summarise(rows: list[dict]) -> dict:
    """Per detector: the statistics of the module docstring."""
    out = {}
    for name in DETECTORS:
        beats = np.array([r["det"][name]["beats"] for r in rows], dtype=float)
        raw = np.array([r["det"][name]["raw_beats"] for r in rows], dtype=float)
        short = np.array([r["det"][name]["short"] for r in rows], dtype=float)
        peaks = np.array([r["det"][name]["peaks"] for r in rows], dtype=float)
        minutes = np.array([r["minutes"] for r in rows])
        hr = np.array([r["hr"] or np.nan for r in rows])
        labelled = np.array([r["cls"] in ("MI", "NORM") for r in rows])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = beats / minutes / hr
            peak_ratio = peaks / minutes / hr
        ok = np.isfinite(hr)
        used: dict[str, int] = {}
        for r in rows:
            used[r["det"][name]["used"]] = used.get(r["det"][name]["used"], 0) + 1
        out[name] = {
            "records": len(rows),
            "no_beat": int((beats == 0).sum()),
            "no_beat_labelled": int(((beats == 0) & labelled).sum()),
            "labelled": int(labelled.sum()),
            "beats": int(beats.sum()),
            "beats_labelled": int(beats[labelled].sum()),
            "beats_per_record": round(float(beats.mean()), 2),
            "beats_per_min_over_hr_median": round(float(np.median(ratio[ok])), 3),
            "peaks_per_min_over_hr_median": round(float(np.median(peak_ratio[ok])), 3),
            "records_over_1_5x_hr": int((ratio[ok] > RATIO_HIGH).sum()),
            "records_under_0_5x_hr": int((ratio[ok] < RATIO_LOW).sum()),
            "short_share": round(float(short.sum() / raw.sum()), 4) if raw.sum() else None,
            "ms_per_record": round(
                1000 * float(np.mean([r["det"][name]["seconds"] for r in rows])), 1
            ),
            "method_used": used,
        }
    return out


def table(summary: dict) -> str:
    """The summary as a markdown table."""
    head = (
        "| detector | no-beat records (all / MI+NORM) | beats (all / MI+NORM) | beats/record "
        "| beats/min ÷ xqrs HR (median) | peaks/min ÷ HR | >1.5x HR | <0.5x HR "
        "| short beats (<0.4 s) | ms/record |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['no_beat']} / {s['no_beat_labelled']} | {s['beats']} / "
            f"{s['beats_labelled']} | {s['beats_per_record']} | "
            f"{s['beats_per_min_over_hr_median']} | {s['peaks_per_min_over_hr_median']} | "
            f"{s['records_over_1_5x_hr']} | {s['records_under_0_5x_hr']} | "
            f"{100 * (s['short_share'] or 0):.1f} % | {s['ms_per_record']} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=None, help="raw data folder")
    ap.add_argument("--max-records", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="default outputs/benchmarks/rpeaks.json")
    args = ap.parse_args()
    cfg = load_config(root=ROOT, profile="full")
    source = args.source or cfg.raw_source
    rows = []
    for rec_id, path, cls in records(cfg, source, args.max_records):
        rows.append({"record": rec_id, "cls": cls, **measure(cfg, path)})
    summary = summarise(rows)
    no_beats = {
        name: [r["record"] for r in rows if r["det"][name]["beats"] == 0] for name in DETECTORS
    }
    result = {"source": str(source), "summary": summary, "no_beat_records": no_beats}
    out = args.out or cfg.path("outputs") / "benchmarks" / "rpeaks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(summary))
    print(json.dumps(no_beats))


if __name__ == "__main__":
    main()
