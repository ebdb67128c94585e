#!/usr/bin/env python
"""Cut the test fixtures (tests/fixtures/raw, tests/fixtures/kaggle) from the real raw data.

Usage (from the project root, with the raw data at ../shared/data or $ECGOPS_DATA_SOURCE):

    .venv/bin/python scripts/make_fixtures.py [--source DIR] [--out tests/fixtures]

What it writes, in the same layouts as the real folders (each with a SHA256SUMS.txt):

- ``raw/mitdb``: MIT-BIH records 104 (paced, no MLII: channel-0 fallback, Q beats),
  114 (MLII on channel 1), 208 and 209 (DS1; F, V, S beats) and 200, 213, 232 (DS2; V, F, S),
  the first ``MITDB_SECONDS`` seconds of both channels, format 212, with their .atr beats;
- ``raw/ptbxl``: 16 PTB-XL records at 500 Hz (6 MI incl. one patient with two records,
  6 NORM, 4 other diagnoses), leads I, II, V1 only, with ``ptbxl_database.csv`` cut to those
  rows and the full ``scp_statements.csv``;
- ``raw/ptbdb-sample``: the two PTB Diagnostic sample records, leads i, ii, v1, with their
  clinical header comments;
- ``raw/annotate``: records for ``ecgops annotate``: a 128 Hz cut of 233 with leads
  ECG1/ECG2, and a cut of 119 without annotations (:func:`make_annotate`);
- ``kaggle/*.csv``: a few beats per file in the Kaggle layout, built from these fixtures with
  the project's own extraction (so the round-trip test compares like with like).

The fixtures are small (< 2 MB) and committed; rerun this script only to regenerate them.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import wfdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecgops.config import load_config  # noqa: E402
from ecgops.data.raw import CHECKSUMS, format_checksums, sha256  # noqa: E402

MITDB_RECORDS = ["104", "114", "200", "208", "209", "213", "232"]
MITDB_SECONDS = 90
PTBXL_LEADS = ["I", "II", "V1"]
PTBXL_PER_CLASS = {"MI": 6, "NORM": 6, "other": 4}
PTBXL_TWO_RECORD_PATIENT = 21551.0  # MI, two records (ecg_id 177, 181)
PTBDB_LEADS = ["i", "ii", "v1"]
KAGGLE_ROWS = 4
ANNOTATE_128 = ("233", "mit233_128hz", 128)  # source record, fixture name, new rate (Hz)
ANNOTATE_PLAIN = ("119", "mit119_noatr")  # source record, fixture name (no .atr)
ANNOTATE_LEADS = ("ECG1", "ECG2")
ANNOTATE_SECONDS = 60


def cut_record(src: Path, dst_dir: Path, name: str, channels: list[int], sampto: int | None):
    """Write the first ``sampto`` samples of some channels of a record, same format."""
    rec = wfdb.rdrecord(str(src), sampto=sampto, channels=channels, physical=False)
    rec.record_name = name
    rec.file_name = [f"{name}.dat"] * len(channels)
    rec.n_sig = len(channels)
    rec.sig_len = rec.d_signal.shape[0]
    rec.init_value = [int(v) for v in rec.d_signal[0]]
    rec.checksum = [int(v) for v in rec.calc_checksum()]
    rec.byte_offset = None
    dst_dir.mkdir(parents=True, exist_ok=True)
    rec.wrsamp(write_dir=str(dst_dir))
    return rec


def channels_named(path: Path, names: list[str]) -> list[int]:
    """Channel indices of the named signals (case-insensitive), in the order given."""
    sig = [s.lower() for s in wfdb.rdheader(str(path)).sig_name]
    return [sig.index(n.lower()) for n in names]


def write_checksums(folder: Path, suffixes: tuple[str, ...]) -> None:
    """SHA256SUMS.txt over the folder's files with those suffixes (like the originals)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes)
    sums = {p.relative_to(folder).as_posix(): sha256(p) for p in files}
    (folder / CHECKSUMS).write_text(format_checksums(sums))


def make_mitdb(src: Path, out: Path) -> None:
    out.mkdir(parents=True)
    for name in MITDB_RECORDS:
        header = wfdb.rdheader(str(src / name))
        sampto = int(MITDB_SECONDS * header.fs)
        cut_record(src / name, out, name, list(range(header.n_sig)), sampto)
        ann = wfdb.rdann(str(src / name), "atr", sampto=sampto)
        wfdb.wrann(
            name,
            "atr",
            ann.sample,
            symbol=ann.symbol,
            subtype=ann.subtype,
            chan=ann.chan,
            num=ann.num,
            aux_note=ann.aux_note,
            fs=ann.fs,
            write_dir=str(out),
        )
    (out / "RECORDS").write_text("".join(f"{n}\n" for n in MITDB_RECORDS))
    write_checksums(out, (".dat", ".hea", ".atr"))


def make_annotate(src: Path, out: Path) -> None:
    """Records for ``ecgops annotate`` (tests/test_annotate.py), cut from the real ``mitdb``.

    - ``ANNOTATE_128`` (e.g. ``mit233_128hz``): the first ``ANNOTATE_SECONDS`` s of MIT-BIH
      record 233 (N, S, V beats) resampled to ``ANNOTATE_FS`` Hz with its leads renamed
      ``ECG1``/``ECG2`` and its .atr samples mapped to the new rate, as another database would
      ship it;
    - ``ANNOTATE_PLAIN``: the first ``ANNOTATE_SECONDS`` s of record 119 (N, V) at 360 Hz
      without annotations (the R-peak detector path).

    Args:
        src: the ``mitdb`` folder.
        out: the folder to write (``tests/fixtures/raw/annotate``).
    """
    from ecgops.data import wfdb_io

    out.mkdir(parents=True, exist_ok=True)
    (source, name, fs), plain = ANNOTATE_128, ANNOTATE_PLAIN
    header = wfdb.rdheader(str(src / source))
    sampto = int(ANNOTATE_SECONDS * header.fs)
    rec = wfdb.rdrecord(str(src / source), sampto=sampto)
    signal = np.column_stack(
        [wfdb_io.resample(rec.p_signal[:, j], header.fs, fs) for j in range(rec.n_sig)]
    )
    wfdb.wrsamp(name, fs=fs, units=rec.units, sig_name=list(ANNOTATE_LEADS), p_signal=signal,
                fmt=["212"] * rec.n_sig, adc_gain=rec.adc_gain, baseline=rec.baseline,
                write_dir=str(out))  # fmt: skip
    ann = wfdb.rdann(str(src / source), "atr", sampto=sampto)
    samples = np.minimum(wfdb_io.to_rate(ann.sample, header.fs, fs), len(signal) - 1)
    wfdb.wrann(name, "atr", samples, symbol=ann.symbol, subtype=ann.subtype, chan=ann.chan,
               num=ann.num, aux_note=ann.aux_note, fs=fs, write_dir=str(out))  # fmt: skip
    plain_header = wfdb.rdheader(str(src / plain[0]))
    cut_record(src / plain[0], out, plain[1], list(range(plain_header.n_sig)),
               int(ANNOTATE_SECONDS * plain_header.fs))  # fmt: skip
    (out / "RECORDS").write_text(f"{name}\n{plain[1]}\n")
    write_checksums(out, (".dat", ".hea", ".atr"))


def choose_ptbxl(src: Path) -> list[int]:
    """ecg_ids: the two-record MI patient plus the lowest ids of distinct patients per class."""
    from ecgops.data.sources.ptbxl import label_records

    cfg = load_config(profile="full")
    meta = label_records(cfg, src)
    meta = meta[~meta["strat_fold"].isin(cfg.data.ptbxl.holdout_folds)]
    cls = meta["label"].map({1: "MI", 0: "NORM"}).fillna("other")
    chosen = list(meta.index[meta["patient_id"] == PTBXL_TWO_RECORD_PATIENT])
    seen = {PTBXL_TWO_RECORD_PATIENT}
    counts = {"MI": len(chosen), "NORM": 0, "other": 0}
    for ecg_id in meta.index:
        c, patient = cls[ecg_id], meta.at[ecg_id, "patient_id"]
        if patient in seen or counts[c] >= PTBXL_PER_CLASS[c]:
            continue
        chosen.append(int(ecg_id))
        seen.add(patient)
        counts[c] += 1
    return sorted(int(i) for i in chosen)


def make_ptbxl(src: Path, out: Path) -> None:
    ids = choose_ptbxl(src)
    out.mkdir(parents=True)
    with (src / "ptbxl_database.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    col = {c: i for i, c in enumerate(header)}
    keep = [r for r in body if int(r[col["ecg_id"]]) in ids]
    with (out / "ptbxl_database.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *keep])
    shutil.copyfile(src / "scp_statements.csv", out / "scp_statements.csv")
    for row in keep:
        rel = Path(row[col["filename_hr"]])
        path = src / rel
        cut_record(path, out / rel.parent, rel.name, channels_named(path, PTBXL_LEADS), None)
    write_checksums(out, (".dat", ".hea"))


def make_ptbdb(src: Path, out: Path) -> None:
    out.mkdir(parents=True)
    names = [n.strip() for n in (src / "RECORDS").read_text().splitlines() if n.strip()]
    for name in names:
        path = src / name
        rel = Path(name)
        cut_record(path, out / rel.parent, rel.name, channels_named(path, PTBDB_LEADS), None)
    (out / "RECORDS").write_text("".join(f"{n}\n" for n in names))
    write_checksums(out, (".dat", ".hea"))


def make_kaggle(raw: Path, out: Path) -> None:
    """A few real beats per Kaggle file, cut by the project's extraction from the fixtures."""
    from ecgops.data.build import collect
    from ecgops.data.kaggle import write_kaggle_csv

    cfg = load_config(profile="smoke")
    out.mkdir(parents=True)
    rng = np.random.default_rng(cfg.seed)
    mit, _ = collect(cfg, "mitbih", raw)
    ptb, _ = collect(cfg, "ptb", raw)

    def pick(df, labels):
        rows = [rng.choice(np.flatnonzero(df["label"].to_numpy() == lab), 1)[0] for lab in labels]
        return df.iloc[sorted(rows)]

    write_kaggle_csv(pick(mit, [0, 1, 2, 3, 4, 0]), out / "mitbih_train.csv")
    write_kaggle_csv(pick(mit, [0, 2, 1, 4]), out / "mitbih_test.csv")
    write_kaggle_csv(pick(ptb, [0] * KAGGLE_ROWS), out / "ptbdb_normal.csv")
    write_kaggle_csv(pick(ptb, [1] * KAGGLE_ROWS), out / "ptbdb_abnormal.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="raw data (../shared/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    args = parser.parse_args()
    source = args.source or load_config(profile="full").raw_source
    with tempfile.TemporaryDirectory(dir=args.out.parent if args.out.exists() else None) as tmp:
        stage = Path(tmp)
        make_mitdb(source / "mitdb", stage / "raw" / "mitdb")
        make_ptbxl(source / "ptbxl", stage / "raw" / "ptbxl")
        make_ptbdb(source / "ptbdb-sample", stage / "raw" / "ptbdb-sample")
        make_annotate(source / "mitdb", stage / "raw" / "annotate")
        make_kaggle(stage / "raw", stage / "kaggle")
        for part in ("raw", "kaggle"):
            shutil.rmtree(args.out / part, ignore_errors=True)
            shutil.copytree(stage / part, args.out / part)
    size = sum(p.stat().st_size for part in ("raw", "kaggle") for p in (args.out / part).rglob("*"))
    print(f"fixtures written to {args.out} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
