"""Cut the small real beat tables used by the validation tests.

Writes ``tests/fixtures/beats_mitbih.parquet`` and ``tests/fixtures/beats_ptb.parquet``: at
most ``--rows`` beats each, extracted from real records with the project's own Kachuee
extraction (``ecgops.data.sources``), a fixed number per class (seeded), in the beat-table
schema (``patient, record, beat, label, source, x0..x186``; float32 signal).

- MIT-BIH: records 208 (N, S, V, F), 232 (S) and 217 (Q: paced, V) of ``mitdb``: all 5 classes.
- PTB: the first MI and healthy PTB-XL records (lead II, outside the holdout fold) whose signal
  is not a copy of another record's, plus the two PTB Diagnostic sample records.

Usage: ``python scripts/make_beat_fixtures.py [--source ../shared/data] [--out tests/fixtures]``
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config, load_config
from ecgops.data.sources import RecordBeats, SourceReport, mitdb, ptbdb, ptbxl
from ecgops.data.wfdb_io import read_lead
from ecgops.schema import SIGNAL_COLUMNS

MITDB_RECORDS = ["208", "232", "217"]
PTBXL_RECORDS_PER_CLASS = 8


def to_table(items: list[RecordBeats]) -> pd.DataFrame:
    """Beat-table rows of some records (``beat`` = index of the beat within its record)."""
    parts = []
    for rb in items:
        n = len(rb.beats)
        meta = pd.DataFrame(
            {
                "patient": pd.Series([rb.patient] * n, dtype="str"),
                "record": pd.Series([rb.record] * n, dtype="str"),
                "beat": np.arange(n, dtype=np.int64),
                "label": rb.labels.astype(np.int64),
                "source": pd.Series([rb.source] * n, dtype="str"),
            }
        )
        signal = pd.DataFrame(rb.beats.astype(np.float32), columns=SIGNAL_COLUMNS)
        parts.append(pd.concat([meta, signal], axis=1))
    return pd.concat(parts, ignore_index=True)


def sample_per_class(table: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Up to ``rows`` beats, spread evenly over the classes (all of a class if it has fewer)."""
    rng = np.random.default_rng(seed)
    classes = sorted(table["label"].unique())
    quota = rows // len(classes)
    picked = []
    for lab in classes:
        idx = np.flatnonzero(table["label"].to_numpy() == lab)
        picked.append(rng.choice(idx, size=min(quota, len(idx)), replace=False))
    chosen = np.sort(np.concatenate(picked))
    return table.iloc[chosen].reset_index(drop=True)


def mitbih_table(cfg: Config, source: Path) -> pd.DataFrame:
    """The beats of :data:`MITDB_RECORDS`."""
    return to_table([mitdb.record_beats(cfg, source / "mitdb" / name) for name in MITDB_RECORDS])


def ptb_table(cfg: Config, source: Path) -> pd.DataFrame:
    """Beats of a few distinct PTB-XL records per class and of the PTB Diagnostic sample."""
    folder = source / "ptbxl"
    meta = ptbxl.label_records(cfg, folder)
    meta = meta[~meta["strat_fold"].isin(cfg.data.ptbxl.holdout_folds) & meta["label"].notna()]
    items: list[RecordBeats] = []
    seen: set[str] = set()
    for label in (0, 1):
        taken = 0
        for _, row in meta[meta["label"] == label].iterrows():
            path = folder / str(row[cfg.data.ptbxl.filename_column])
            digest = hashlib.sha256(read_lead(path, cfg.data.ptbxl.lead).signal).hexdigest()
            if digest in seen:  # PTB-XL holds a few copies of one recording under two ids
                continue
            seen.add(digest)
            rb = ptbxl.record_beats(cfg, path, ptbxl.patient_id(row["patient_id"]), label)
            if len(rb.beats):
                items.append(rb)
                taken += 1
            if taken == PTBXL_RECORDS_PER_CLASS:
                break
    report = SourceReport(source="ptbdb", folder=source / "ptbdb-sample")
    items.extend(rb for rb in ptbdb.iter_records(cfg, report.folder, report) if len(rb.beats))
    return to_table(items)


def main() -> None:
    """Build both fixtures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="raw data (default: config)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    cfg = load_config(profile="full")
    source = args.source or cfg.raw_source
    args.out.mkdir(parents=True, exist_ok=True)
    for task, build in (("mitbih", mitbih_table), ("ptb", ptb_table)):
        table = sample_per_class(build(cfg, source), args.rows, cfg.seed)
        path = args.out / f"beats_{task}.parquet"
        table.to_parquet(path, index=False, compression="zstd")
        counts = table["label"].value_counts().sort_index().to_dict()
        print(f"{path}: {len(table)} beats, per class {counts}, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
