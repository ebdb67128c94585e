"""Splits of the multi-lead table on the same patients as the single-lead ``ptb`` split.

``data/splits/ptb12.parquet`` has the columns of every split table (``row, beat, patient,
patient_fold``; see :mod:`ecgops.data.splits`):

- ``patient`` and ``patient_fold`` come from ``data/splits/ptb.parquet``: each patient of the
  single-lead table has one part and one grouped fold there, and every ptb12 row of that
  patient gets them, so single- and multi-lead results compare one to one. Patients the
  single-lead table lacks (records where the study's R-peak rule found no beat) get a fold by
  the same grouped rule on their own (``StratifiedGroupKFold`` with ``splits.cv_folds`` and
  ``seed``; with fewer such patients than folds, a stable hash of the patient id modulo the
  number of folds), and part ``test`` in fold 0, else ``train`` (no new validation patients:
  the validation part stays the single-lead one's).
- ``beat`` (the study's per-beat scheme) is drawn afresh on the ptb12 rows with
  :func:`ecgops.data.splits.beat_scheme`: beats of the two tables do not correspond one to one.

:func:`fold_patient_parts` and :func:`iter_multilead_folds` give the same mapping for every
grouped fold ``k`` (the single-lead fold's train/val/test patients).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data import splits as sp
from ecgops.data.build import table_path
from ecgops.data.gate_set import GATE
from ecgops.data.multilead_schema import BASE_TASK, TASK
from ecgops.errors import DataError
from ecgops.io import read_json, write_json, write_parquet


def patient_map(ptb: pd.DataFrame, ptb_splits: pd.DataFrame) -> pd.DataFrame:
    """Patient -> ``patient`` part and ``patient_fold`` of the single-lead split.

    Args:
        ptb: the single-lead beat table.
        ptb_splits: its split assignments (same row order).

    Returns:
        A frame indexed by patient with columns ``part`` and ``fold``.

    Raises:
        DataError: a patient has two parts or folds (not a grouped split).
    """
    joined = pd.DataFrame(
        {
            "patient": ptb["patient"].astype(str).to_numpy(),
            "part": ptb_splits["patient"].astype(str).to_numpy(),
            "fold": ptb_splits["patient_fold"].to_numpy(np.int64),
        }
    )
    spread = joined.groupby("patient")[["part", "fold"]].nunique()
    bad = spread.index[(spread > 1).any(axis=1)].tolist()
    if bad:
        raise DataError(None, f"the {BASE_TASK} split puts patients {bad[:5]} in two parts")
    return joined.groupby("patient")[["part", "fold"]].first()


def _hash_fold(patient: str, seed: int, n_folds: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{patient}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_folds


def new_patient_folds(df: pd.DataFrame, cfg: Config) -> pd.Series:
    """Grouped folds of patients (rows of ``df``) that the single-lead split lacks.

    Args:
        df: the multi-lead rows of those patients (``patient``, ``label``).
        cfg: configuration (``splits.cv_folds``, ``seed``).

    Returns:
        Fold per patient (index: patient).
    """
    patients = df["patient"].astype(str).to_numpy()
    n_folds = cfg.splits.cv_folds
    if len(np.unique(patients)) >= n_folds:
        folds = sp.grouped_folds(df["label"].to_numpy(), patients, n_folds, cfg.seed)
        return pd.Series(folds, index=patients).groupby(level=0).first()
    unique = sorted(set(patients))
    return pd.Series([_hash_fold(p, cfg.seed, n_folds) for p in unique], index=unique)


def assign_multilead_splits(
    ml: pd.DataFrame, ptb: pd.DataFrame, ptb_splits: pd.DataFrame, cfg: Config
) -> pd.DataFrame:
    """Split assignments of the multi-lead rows on the single-lead split's patients (pure).

    Args:
        ml: the multi-lead table.
        ptb: the single-lead table.
        ptb_splits: its assignments.
        cfg: configuration.

    Returns:
        ``row, beat, patient, patient_fold`` per multi-lead row.
    """
    known = patient_map(ptb, ptb_splits)
    patients = ml["patient"].astype(str)
    part = patients.map(known["part"])
    fold = patients.map(known["fold"])
    new = part.isna().to_numpy()
    if new.any():
        folds = new_patient_folds(ml[new], cfg)
        fold[new] = patients[new].map(folds)
        part[new] = np.where(fold[new].to_numpy() == 0, sp.TEST, sp.TRAIN)
    s = cfg.splits
    gate = (part == GATE).to_numpy()  # the single-lead gate patients stay sealed in both schemes
    beat = np.full(len(ml), GATE, dtype=object)
    beat[~gate] = sp.beat_scheme(ml["label"].to_numpy()[~gate], s.test_size, s.val_size, cfg.seed)
    return pd.DataFrame(
        {
            "row": np.arange(len(ml), dtype=np.int64),
            "beat": pd.array(beat.astype(str), dtype="str"),
            "patient": pd.array(part.astype(str).to_numpy(), dtype="str"),
            "patient_fold": fold.to_numpy(np.int64),
        }
    )


def fold_patient_parts(ptb: pd.DataFrame, ptb_splits: pd.DataFrame, cfg: Config, k: int) -> dict:
    """Patient -> part of the single-lead grouped fold ``k`` (``fold_parts`` on ``ptb``)."""
    labels = ptb["label"].to_numpy()
    groups = ptb["patient"].astype(str).to_numpy()
    folds = ptb_splits["patient_fold"].to_numpy(np.int64)
    parts = sp.fold_parts(labels, groups, folds, k, cfg.splits.val_size, cfg.seed)
    return dict(zip(groups, parts, strict=True))


def multilead_fold_parts(
    ml_splits: pd.DataFrame, ml: pd.DataFrame, by_patient: dict, k: int
) -> np.ndarray:
    """Parts of the multi-lead rows in fold ``k``: the single-lead patient's part, else by fold."""
    patients = ml["patient"].astype(str).to_numpy()
    fallback = np.where(ml_splits["patient_fold"].to_numpy() == k, sp.TEST, sp.TRAIN)
    return np.array([by_patient.get(p, f) for p, f in zip(patients, fallback, strict=True)])


def split_path(cfg: Config) -> Path:
    """``<splits>/ptb12.parquet``."""
    return sp.split_path(cfg, TASK)


def make_multilead_splits(cfg: Config) -> Path:
    """Write ``<splits>/ptb12.parquet`` and its summary from the built tables and ptb split.

    Args:
        cfg: configuration.

    Returns:
        The split parquet path.

    Raises:
        DataError: a table or the single-lead split is missing, stale or unreadable.
    """
    ml = sp.read_table(cfg, TASK)
    ptb = sp.read_table(cfg, BASE_TASK)
    ptb_splits = sp.load_assignments(cfg, BASE_TASK, n_rows=len(ptb))
    splits = assign_multilead_splits(ml, ptb, ptb_splits, cfg)
    target = split_path(cfg)
    summary = {
        "task": TASK,
        "table": str(table_path(cfg, TASK)),
        "table_md5": sp.file_md5(table_path(cfg, TASK)),
        "patients_from": str(sp.split_path(cfg, BASE_TASK)),
        "patients_from_md5": sp.file_md5(sp.split_path(cfg, BASE_TASK)),
        "new_patients": sorted(set(ml["patient"].astype(str)) - set(ptb["patient"].astype(str))),
        "rows": len(ml),
        "seed": cfg.seed,
        "settings": cfg.splits.model_dump(),
        "counts": sp.split_counts(ml, splits, cfg.class_names(BASE_TASK)),
        "kaggle": False,
    }
    write_parquet(splits, target)
    write_json(summary, sp.split_summary_path(cfg, TASK))
    return target


def load_multilead_assignments(cfg: Config, n_rows: int | None = None) -> pd.DataFrame:
    """The ptb12 split, refused when made for another ptb12 table or another ``ptb`` split.

    Args:
        cfg: configuration.
        n_rows: rows of the ptb12 table in hand (checked when given).

    Returns:
        The assignments (``row, beat, patient, patient_fold``).

    Raises:
        DataError: missing, unreadable or stale split.
    """
    splits = sp.load_assignments(cfg, TASK, n_rows=n_rows)
    summary = sp.split_summary_path(cfg, TASK)
    source = sp.split_path(cfg, BASE_TASK)
    known = summary.is_file() and source.is_file()
    if known and read_json(summary).get("patients_from_md5") != sp.file_md5(source):
        raise DataError(
            split_path(cfg), f"made for another {source}; rerun `ecgops data split --task {TASK}`"
        )
    return splits


def iter_multilead_folds(
    cfg: Config,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Grouped folds of the multi-lead table with the single-lead folds' patients per part.

    Args:
        cfg: configuration.

    Yields:
        ``(train_df, val_df, test_df)`` of ptb12 rows for each fold ``k`` in turn.

    Raises:
        DataError: a table or split is missing or stale.
    """
    ml = sp.read_table(cfg, TASK)
    ml_splits = load_multilead_assignments(cfg, n_rows=len(ml))
    ptb = sp.read_table(cfg, BASE_TASK)
    ptb_splits = sp.load_assignments(cfg, BASE_TASK, n_rows=len(ptb))
    for k in range(int(ptb_splits["patient_fold"].max()) + 1):
        by_patient = fold_patient_parts(ptb, ptb_splits, cfg, k)
        parts = multilead_fold_parts(ml_splits, ml, by_patient, k)
        yield tuple(ml[parts == p].reset_index(drop=True) for p in sp.PARTS)
