"""Train/val/test assignments of a beat table: ``data/splits/{task}.parquet``.

Columns: ``row`` (index into the beat table), ``beat`` and ``patient`` (``train`` / ``val`` /
``test``, ``gate`` or ``unused``), ``patient_fold`` (grouped CV fold, -1 where there is none,
always -1 on gate rows). A ``{task}.summary.json`` beside it holds the counts and the MD5 of the
table the split was made for (a split of another table is refused); ``{task}.gate.json`` lists
the gate set. Everything but the gate set is seeded with ``cfg.seed``; validation parts always
come from the training part.

Roles (docs/architecture.md): ``train`` fits; ``val`` takes every decision of a run (early
stopping, tuning, selection, calibration, record thresholds, the registry's ranking); ``test``
is reported only; ``gate``, the **sealed gate set** (:mod:`ecgops.data.gate_set`: patients or
DS1 records chosen once with their own seed, in no fold), is read only by the promotion gate
through :func:`load_gate`, and is versioned with the split table (DVC).

Schemes:

- ``beat`` (the study's): stratified random ``test_size`` of the beats; ``val_size`` of the rest
  is carved out, stratified. Kaggle MIT-BIH keeps its own train/test files (``kaggle_split``).
- ``patient``: new patients. PTB: no patient in two parts. MIT-BIH: no record in two parts,
  the inter-record split of de Chazal et al. (2004): DS1 trains, DS2 tests, records in neither
  (paced 102, 104, 107, 217) are ``unused``; records 201 (DS1) and 202 (DS2) come from one
  subject, so it is inter-record, almost but not exactly inter-patient. Validation is carved
  from DS1 by whole records (``splits.mitbih_patient_val: grouped``, stratified by class with
  ``StratifiedGroupKFold``) or by beats (``beat``). With 19 open DS1 records a grouped
  validation part holds about 3 records: coarse metrics, some rare classes may be missing, but
  the honest choice for early stopping on an inter-patient task. PTB: ``StratifiedGroupKFold``
  by patient with ``cv_folds`` folds; fold 0 is the test part (1/cv_folds of the patients, 20 %
  with 5 folds), validation is carved from the other folds, grouped by patient.
  :func:`iter_patient_folds` yields every fold in turn. On Kaggle-imported tables (no patient
  ids) this is a per-beat split, and for MIT-BIH it reuses the Kaggle train/test files.
- MIT-BIH rows of other arrhythmia sources (``data.mitbih_sources``) follow
  ``splits.extra_sources`` in both schemes (:func:`extra_source_rows`); the default
  ``exclude`` leaves the beat split and DS1/DS2 exactly as without them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops import paths
from ecgops.config import Config
from ecgops.data.build import check_task, extra_source_rows, table_path
from ecgops.data.gate_set import GATE, gate_mask, gate_summary
from ecgops.errors import DataError
from ecgops.io import read_json, write_json, write_parquet
from ecgops.versions import file_md5

log = logging.getLogger(__name__)

TRAIN, VAL, TEST, UNUSED = "train", "val", "test", "unused"
PARTS = (TRAIN, VAL, TEST)
SCHEMES = ("beat", "patient")


def split_path(cfg: Config, task: str) -> Path:
    """``<splits>/{task}.parquet`` (:func:`ecgops.paths.split_table`)."""
    return paths.split_table(cfg, task)


def split_summary_path(cfg: Config, task: str) -> Path:
    """``<splits>/{task}.summary.json`` (:func:`ecgops.paths.split_summary`)."""
    return paths.split_summary(cfg, task)


def gate_path(cfg: Config, task: str) -> Path:
    """``<splits>/{task}.gate.json``: the sealed gate set's patients / records and counts."""
    return paths.gate_file(cfg, task)


def _stratified(
    idx: np.ndarray, labels: np.ndarray, size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, part) with ``size`` of it in ``part``, stratified if possible."""
    from sklearn.model_selection import train_test_split

    if len(idx) < 2:
        return idx, idx[:0]
    try:
        rest, part = train_test_split(idx, test_size=size, stratify=labels, random_state=seed)
    except ValueError:
        log.warning("a class has too few beats to stratify; splitting %d rows at random", len(idx))
        rest, part = train_test_split(idx, test_size=size, random_state=seed)
    return np.sort(rest), np.sort(part)


def beat_scheme(labels: np.ndarray, test_size: float, val_size: float, seed: int) -> np.ndarray:
    """The ``beat`` scheme: stratified random test part, then val carved from the rest.

    Args:
        labels: label per row.
        test_size: share of rows in test.
        val_size: share of the remaining rows in val.
        seed: random seed.

    Returns:
        ``train`` / ``val`` / ``test`` per row.
    """
    labels = np.asarray(labels)
    out = np.full(len(labels), TRAIN, dtype=object)
    rest, test = _stratified(np.arange(len(labels)), labels, test_size, seed)
    _, val = _stratified(rest, labels[rest], val_size, seed)
    out[test] = TEST
    out[val] = VAL
    return out


def carve_val(labels: np.ndarray, train_mask: np.ndarray, val_size: float, seed: int) -> np.ndarray:
    """Assign ``val_size`` of the ``train`` rows to val (stratified); returns the new parts."""
    out = np.where(train_mask, TRAIN, UNUSED).astype(object)
    idx = np.flatnonzero(train_mask)
    _, val = _stratified(idx, np.asarray(labels)[idx], val_size, seed)
    out[val] = VAL
    return out


def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per row from ``StratifiedGroupKFold`` (each group in exactly one fold).

    Args:
        labels: label per row.
        groups: group (patient) per row.
        n_folds: number of folds.
        seed: random seed.

    Returns:
        int64 fold ids in ``0 .. n_folds-1``.

    Raises:
        ValueError: fewer groups than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(pd.unique(groups))
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} patients cannot make {n_folds} grouped folds")
    folds = np.full(len(labels), -1, dtype=np.int64)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a rare class in fewer groups than folds: best effort
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for k, (_, test) in enumerate(cv.split(np.zeros(len(labels)), labels, groups)):
            folds[test] = k
    return folds


def grouped_val(
    labels: np.ndarray, groups: np.ndarray, train_mask: np.ndarray, val_size: float, seed: int
) -> np.ndarray:
    """Mark about ``val_size`` of the training groups as val, whole groups at a time.

    Args:
        labels: label per row.
        groups: group per row.
        train_mask: rows that may go to val.
        val_size: share of the training rows wanted in val.
        seed: random seed.

    Returns:
        Boolean mask of the val rows (a subset of ``train_mask``). With fewer training groups
        than ``1 / val_size`` the val part is one group's share (one of ``n_groups`` folds);
        with a single group it is empty (logged).
    """
    idx = np.flatnonzero(train_mask)
    n_groups = len(pd.unique(np.asarray(groups)[idx]))
    n_splits = min(max(2, int(round(1.0 / val_size))), n_groups)
    val = np.zeros(len(labels), dtype=bool)
    try:
        folds = grouped_folds(np.asarray(labels)[idx], np.asarray(groups)[idx], n_splits, seed)
    except ValueError:
        log.warning("too few training groups for a grouped val part; val is empty")
        return val
    val[idx[folds == 0]] = True
    return val


def fold_parts(
    labels: np.ndarray,
    groups: np.ndarray,
    folds: np.ndarray,
    k: int,
    val_size: float,
    seed: int,
) -> np.ndarray:
    """Parts for grouped CV fold ``k``: fold ``k`` tests, val carved by group from the rest.

    Rows without a fold (-1: the sealed gate set) are ``gate`` in every fold.
    """
    sealed = folds < 0
    test = folds == k
    val = grouped_val(labels, groups, ~test & ~sealed, val_size, seed)
    out = np.full(len(labels), TRAIN, dtype=object)
    out[val] = VAL
    out[test] = TEST
    out[sealed] = GATE
    return out


def _open_rows(mask: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Parts of the rows in ``mask`` placed into a full-length array (``gate`` elsewhere)."""
    out = np.full(len(mask), GATE, dtype=object)
    out[mask] = parts
    return out


def has_kaggle_split(df: pd.DataFrame) -> bool:
    """Whether the table keeps the Kaggle train/test files (imported MIT-BIH)."""
    return "kaggle_split" in df.columns and df["kaggle_split"].notna().all()


def assign_splits(df: pd.DataFrame, cfg: Config, task: str) -> pd.DataFrame:
    """Both split schemes for a beat table (pure; nothing is read or written).

    Args:
        df: the beat table.
        cfg: configuration (``seed``, ``splits``, ``data.mitbih.ds1/ds2``).
        task: ``mitbih`` or ``ptb``.

    Returns:
        Columns ``row, beat, patient, patient_fold``, one row per beat; the sealed gate rows
        (:func:`gate_mask`) are ``gate`` in both scheme columns and fold -1.

    Raises:
        ValueError: too few patients for the grouped folds, or a bad gate record.
    """
    check_task(task)
    sp, seed = cfg.splits, cfg.seed
    labels = df["label"].to_numpy()
    n = len(df)
    folds = np.full(n, -1, dtype=np.int64)
    gate = gate_mask(df, cfg, task, kaggle=has_kaggle_split(df))
    free = ~gate
    if task == "mitbih" and has_kaggle_split(df):
        train = df["kaggle_split"].to_numpy() == TRAIN
        beat = carve_val(labels, train & free, sp.val_size, seed)
        beat[~train] = TEST
        patient = beat.copy()
        log.warning("Kaggle MIT-BIH has no record ids: the patient scheme reuses its train/test")
    elif task == "mitbih":
        extra = extra_source_rows(df)
        pool = free & (~extra if sp.extra_sources != TRAIN else np.ones(n, dtype=bool))
        beat = _open_rows(pool, beat_scheme(labels[pool], sp.test_size, sp.val_size, seed))
        records = df["record"].astype(str).to_numpy()
        ds1 = np.isin(records, cfg.data.mitbih.ds1) & free & ~extra
        ds2 = np.isin(records, cfg.data.mitbih.ds2) & ~extra
        train = ds1 | (extra & free) if sp.extra_sources == TRAIN else ds1
        if sp.mitbih_patient_val == "grouped":
            patient = np.where(train, TRAIN, UNUSED).astype(object)
            patient[grouped_val(labels, records, train, sp.val_size, seed)] = VAL
        else:
            patient = carve_val(labels, train, sp.val_size, seed)
        patient[ds2] = TEST
        if sp.extra_sources != TRAIN:
            beat[extra] = patient[extra] = TEST if sp.extra_sources == TEST else UNUSED
    else:
        beat = _open_rows(free, beat_scheme(labels[free], sp.test_size, sp.val_size, seed))
        groups = df["patient"].astype(str).to_numpy()
        folds[free] = grouped_folds(labels[free], groups[free], sp.cv_folds, seed)
        patient = fold_parts(labels, groups, folds, 0, sp.val_size, seed)
    beat[gate] = GATE
    patient[gate] = GATE
    return pd.DataFrame(
        {
            "row": np.arange(n, dtype=np.int64),
            "beat": pd.array(beat.astype(str), dtype="str"),
            "patient": pd.array(patient.astype(str), dtype="str"),
            "patient_fold": folds,
        }
    )


def split_counts(df: pd.DataFrame, splits: pd.DataFrame, names: list[str]) -> dict:
    """Rows per scheme, part and class name."""
    out: dict = {}
    labels = df["label"].to_numpy()
    for scheme in SCHEMES:
        parts = splits[scheme].to_numpy()
        out[scheme] = {
            part: {
                "rows": int((parts == part).sum()),
                "patients": int(df.loc[parts == part, "patient"].nunique()),
                "per_class": {
                    name: int(((parts == part) & (labels == i)).sum())
                    for i, name in enumerate(names)
                },
            }
            for part in (*PARTS, GATE, UNUSED)
            if (parts == part).any()
        }
    return out


def read_table(cfg: Config, task: str) -> pd.DataFrame:
    """Read ``<processed>/{task}.parquet`` with a clear error when it is missing or broken."""
    path = table_path(cfg, task)
    if not path.is_file():
        raise DataError(path, f"not found; run `ecgops data build --task {task}` first")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types on a broken file
        raise DataError(path, f"not a readable parquet file: {exc}") from exc


def make_splits(cfg: Config, task: str) -> Path:
    """Write ``<splits>/{task}.parquet`` and its summary for the processed table.

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.

    Returns:
        The split parquet path.

    Raises:
        DataError: the processed table is missing, or has too few patients for the folds.
    """
    df = read_table(cfg, task)
    try:
        splits = assign_splits(df, cfg, task)
    except ValueError as exc:
        raise DataError(table_path(cfg, task), str(exc)) from exc
    target = split_path(cfg, task)
    summary = {
        "task": task,
        "table": str(table_path(cfg, task)),
        "table_md5": file_md5(table_path(cfg, task)),
        "rows": len(df),
        "seed": cfg.seed,
        "settings": cfg.splits.model_dump(),
        "counts": split_counts(df, splits, cfg.class_names(task)),
        "kaggle": has_kaggle_split(df),
        "gate": gate_summary(df, splits["patient"].to_numpy() == GATE, cfg, task),
    }
    write_parquet(splits, target)
    write_json(summary, split_summary_path(cfg, task))
    write_json(summary["gate"], gate_path(cfg, task))
    return target


def load_assignments(cfg: Config, task: str, n_rows: int | None = None) -> pd.DataFrame:
    """Read the split assignments, refusing a split made for another table.

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.
        n_rows: rows of the table in hand (checked when given).

    Returns:
        The assignments (``row, beat, patient, patient_fold``).

    Raises:
        DataError: missing, unreadable or stale split.
    """
    path = split_path(cfg, task)
    if not path.is_file():
        raise DataError(path, f"not found; run `ecgops data split --task {task}` first")
    splits = pd.read_parquet(path)
    summary = split_summary_path(cfg, task)
    table = table_path(cfg, task)
    known = summary.is_file() and table.is_file()
    if known and read_json(summary).get("table_md5") != file_md5(table):
        raise DataError(path, f"made for another version of {table}; rerun `ecgops data split`")
    if n_rows is not None and len(splits) != n_rows:
        raise DataError(path, f"{len(splits)} rows but the table has {n_rows}; rerun split")
    return splits


def load_split(cfg: Config, task: str, scheme: str) -> dict[str, pd.DataFrame]:
    """The beat table cut into train / val / test by a scheme.

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.
        scheme: ``beat`` or ``patient``.

    Returns:
        ``{"train": df, "val": df, "test": df}`` (rows in table order, index reset).

    Raises:
        DataError: missing or stale table or split.
        ValueError: unknown scheme.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    df = read_table(cfg, task)
    parts = load_assignments(cfg, task, n_rows=len(df))[scheme].to_numpy()
    return {p: df[parts == p].reset_index(drop=True) for p in PARTS}


def load_gate(cfg: Config, task: str) -> pd.DataFrame:
    """The sealed gate set's beats (table order, index reset): for the promotion gate only.

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.

    Returns:
        The gate rows of the beat table (``patient`` names the bootstrap's groups).

    Raises:
        DataError: missing or stale table or split, or a split without gate rows (made before
            the gate set existed).
    """
    df = read_table(cfg, task)
    parts = load_assignments(cfg, task, n_rows=len(df))["patient"].to_numpy()
    gate = parts == GATE
    if not gate.any():
        raise DataError(
            split_path(cfg, task), f"no sealed gate rows; rerun `ecgops data split --task {task}`"
        )
    return df[gate].reset_index(drop=True)


def iter_patient_folds(
    cfg: Config, task: str
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Grouped cross-validation folds: ``(train, val, test)`` for each fold in turn.

    Fold ``k`` tests; validation is carved from the other folds by patient. Fold 0 is the
    ``patient`` column's split.

    Args:
        cfg: configuration.
        task: ``ptb`` (MIT-BIH has the fixed DS1/DS2 split and no folds).

    Yields:
        ``(train_df, val_df, test_df)``.

    Raises:
        DataError: missing or stale table/split, or a table without grouped folds.
    """
    df = read_table(cfg, task)
    folds = load_assignments(cfg, task, n_rows=len(df))["patient_fold"].to_numpy()
    if (folds < 0).all():
        raise DataError(
            split_path(cfg, task), f"{task} has no grouped CV folds (MIT-BIH uses DS1/DS2)"
        )
    labels = df["label"].to_numpy()
    groups = df["patient"].astype(str).to_numpy()
    for k in range(int(folds.max()) + 1):
        parts = fold_parts(labels, groups, folds, k, cfg.splits.val_size, cfg.seed)
        yield tuple(df[parts == p].reset_index(drop=True) for p in PARTS)


def stratified_subsample(df: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, each class in proportion (at least one beat per class).

    Args:
        df: a beat table.
        max_rows: row budget; None keeps everything.
        seed: random seed.

    Returns:
        The kept rows in their original order (index reset).
    """
    if max_rows is None or len(df) <= max_rows:
        return df.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    y = df["label"].to_numpy()
    keep: list[np.ndarray] = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        quota = min(len(members), max(1, round(max_rows * len(members) / len(df))))
        keep.append(rng.choice(members, size=quota, replace=False))
    rows = np.sort(np.concatenate(keep))
    return df.iloc[rows].reset_index(drop=True)


def has_folds(cfg: Config, task: str, scheme: str) -> bool:
    """Whether a scheme's split has grouped CV folds (then every trainer cross-validates).

    The rule is the split table's: a ``{scheme}_fold`` column with more than one fold (today
    only PTB's ``patient`` scheme; MIT-BIH keeps the fixed DS1/DS2 split).

    Args:
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.
        scheme: ``beat`` or ``patient``.

    Returns:
        True when :func:`iter_patient_folds` has folds to cross-validate over.

    Raises:
        DataError: the split table is missing.
    """
    path = split_path(cfg, task)
    if not path.is_file():
        raise DataError(path, f"not found; run `ecgops data split --task {task}` first")
    column = f"{scheme}_fold"
    splits = pd.read_parquet(path)
    if column not in splits:
        return False
    folds = splits[column].to_numpy()
    return len(np.unique(folds[folds >= 0])) > 1
