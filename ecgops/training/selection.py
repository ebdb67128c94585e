"""Selection among configurations without the test part or the gate set.

:func:`selection_folds` cuts grouped folds out of the patient split's training and validation
patients only (the test part and the sealed gate set are in none of them), and
:func:`selection_score` fits and scores a trainer on them. A choice between configurations
(e.g. :func:`ecgops.training.classical.compare_imbalance`) reads these scores or the
validation part, never the grouped CV over every fold (whose folds test every patient: it is
reported, not used to choose).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.evaluation.metrics import classification_metrics
from ecgops.schema import labels
from ecgops.training.run import TrainingRun, cv_summary

log = logging.getLogger(__name__)


def grid_groups(train: pd.DataFrame, n_splits: int) -> np.ndarray | None:
    """Patients / records of ``train`` for a grouped grid search under the patient scheme.

    Args:
        train: the training rows (``patient``).
        n_splits: the search's folds (``classical.lr.cv``).

    Returns:
        The group of each row, or None (beat-level folds, logged) with fewer groups than folds.
    """
    groups = train["patient"].astype(str).to_numpy()
    if len(np.unique(groups)) < n_splits:
        log.warning(
            "%d training patients < %d folds: beat-level grid folds", len(set(groups)), n_splits
        )
        return None
    return groups


def selection_folds(cfg: Config, task: str) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Grouped folds within the patient split's training and validation patients.

    ``StratifiedGroupKFold`` (``splits.cv_folds``, ``seed``) over the rows whose ``patient``
    part is ``train`` or ``val``: the test part and the sealed gate set are in none.

    Args:
        cfg: configuration.
        task: a task with grouped folds (``ptb``).

    Returns:
        ``(fit_rows, scored_rows)`` per fold.

    Raises:
        DataError: missing or stale table or split.
        ValueError: fewer training patients than folds.
    """
    from ecgops.data.splits import TRAIN, VAL, grouped_folds, load_assignments, read_table

    df = read_table(cfg, task)
    parts = load_assignments(cfg, task, n_rows=len(df))["patient"].to_numpy()
    inner = df[np.isin(parts, [TRAIN, VAL])].reset_index(drop=True)
    groups = inner["patient"].astype(str).to_numpy()
    folds = grouped_folds(labels(inner), groups, cfg.splits.cv_folds, cfg.seed)
    return [(inner[folds != k], inner[folds == k]) for k in range(int(folds.max()) + 1)]


def selection_score(
    trainer: TrainingRun, folds: list[tuple[pd.DataFrame, pd.DataFrame]]
) -> dict[str, Any]:
    """:func:`~ecgops.training.run.cv_summary` of a trainer fitted and scored on ``folds``."""
    scores = []
    for fit_rows, scored in folds:
        train = trainer.subsample(fit_rows.reset_index(drop=True))
        fitted = trainer.fit(train, train.iloc[:0], fold=None)
        proba = trainer.predict(fitted, scored.reset_index(drop=True), timed=False)
        scores.append(classification_metrics(labels(scored), proba))
    return cv_summary(scores)
