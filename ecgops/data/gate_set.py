"""The sealed gate set of a task: which patients (PTB) or records (MIT-BIH) it holds.

Chosen once, with its own seed (``splits.gate.seed``, not the experiment ``seed``), before any
other split: :mod:`ecgops.data.splits` marks these rows ``gate`` in every scheme column and
in no fold, so no training, validation or test part of either scheme holds them, and only the
promotion gate reads them (:func:`ecgops.data.splits.load_gate`).

- MIT-BIH: the DS1 records ``splits.gate.mitbih.records`` that the table holds (records with
  S and V beats, so the gate can tell models apart on the rare classes; DS2 stays whole, the
  literature's test set). Naming a record outside DS1 is an error.
- PTB: ``splits.gate.ptb.fraction`` of the patients, drawn per patient class (the patient's
  majority label), at least one of every class that has two or more patients, never a class's
  last patient.
- A table holding none of the named records (Kaggle import, a subset) draws the task's
  ``fraction`` of the pool's groups by the PTB rule (MIT-BIH pool: DS1, or the rows of the
  Kaggle training file, which have no record ids).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ecgops.config import Config

log = logging.getLogger(__name__)

GATE = "gate"


def group_column(task: str) -> str:
    """The column whose values are the gate's groups: ``record`` (MIT-BIH), ``patient`` (PTB)."""
    return "record" if task == "mitbih" else "patient"


def gate_groups(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> list[str]:
    """Draw ``fraction`` of the groups for the gate set, per group class (majority label).

    Args:
        labels: label per row.
        groups: group (patient or record) per row.
        fraction: share of each class's groups drawn (rounded; at least one of a class with
            two or more groups, never its last one).
        seed: random seed (``splits.gate.seed``).

    Returns:
        The drawn groups, sorted.
    """
    frame = pd.DataFrame({"g": np.asarray(groups).astype(str), "y": np.asarray(labels)})
    sizes = frame.groupby(["g", "y"]).size().sort_values(kind="stable")
    major = sizes.groupby(level="g").tail(1).reset_index(level="y")["y"]
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for label in sorted(major.unique()):
        members = np.sort(major.index[major == label].to_numpy().astype(str))
        k = min(max(1, round(fraction * len(members))), len(members) - 1)
        chosen += list(rng.choice(members, size=k, replace=False)) if k > 0 else []
    return sorted(str(g) for g in chosen)


def gate_pool(df: pd.DataFrame, cfg: Config, task: str, kaggle: bool) -> np.ndarray:
    """Rows the gate set may take: MIT-BIH DS1 (Kaggle: the training file), PTB every row."""
    if task != "mitbih":
        return np.ones(len(df), dtype=bool)
    if kaggle:
        return df["kaggle_split"].to_numpy() == "train"
    return np.isin(df["record"].astype(str).to_numpy(), cfg.data.mitbih.ds1)


def gate_mask(df: pd.DataFrame, cfg: Config, task: str, kaggle: bool = False) -> np.ndarray:
    """Rows of the sealed gate set (pure; see the module docstring for the rule).

    Args:
        df: the beat table.
        cfg: configuration (``splits.gate``, ``data.mitbih.ds1``).
        task: ``mitbih`` or ``ptb``.
        kaggle: the table keeps the Kaggle train/test files (MIT-BIH without record ids).

    Returns:
        Boolean mask of the gate rows.

    Raises:
        ValueError: a named MIT-BIH gate record is not a DS1 record.
    """
    spec = getattr(cfg.splits.gate, task)
    groups = df[group_column(task)].astype(str).to_numpy()
    pool = gate_pool(df, cfg, task, kaggle)
    if task == "mitbih":
        outside = sorted(set(spec.records or []) - set(cfg.data.mitbih.ds1))
        if outside:
            raise ValueError(f"splits.gate.mitbih.records {outside} are not DS1 records")
    present = sorted(set(spec.records or []) & set(groups[pool]))
    if present:
        return pool & np.isin(groups, present)
    if spec.records:
        log.warning("%s: no gate record of %s in the table; drawing a fraction", task, spec.records)
    labels = df["label"].to_numpy()
    drawn = gate_groups(labels[pool], groups[pool], spec.fraction, cfg.splits.gate.seed)
    return pool & np.isin(groups, drawn)


def gate_summary(df: pd.DataFrame, gate: np.ndarray, cfg: Config, task: str) -> dict:
    """What ``{task}.gate.json`` holds: the gate's patients / records, rows and classes.

    Args:
        df: the beat table.
        gate: mask of its gate rows.
        cfg: configuration.
        task: ``mitbih`` or ``ptb``.

    Returns:
        ``task, group_column, groups, rule, seed, settings, rows, per_class``.
    """
    column = group_column(task)
    spec = getattr(cfg.splits.gate, task)
    groups = sorted(df.loc[gate, column].astype(str).unique())
    labels = df["label"].to_numpy()[gate]
    return {
        "task": task,
        "group_column": column,
        "groups": groups,
        "rule": "records" if set(groups) & set(spec.records or []) else "fraction",
        "seed": cfg.splits.gate.seed,
        "settings": spec.model_dump(),
        "rows": int(gate.sum()),
        "per_class": {
            name: int((labels == i).sum()) for i, name in enumerate(cfg.class_names(task))
        },
    }
