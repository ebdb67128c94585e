"""A predictor with a calibrator applied: :class:`CalibratedPredictor`.

Kept apart from the calibrators (:mod:`ecgops.evaluation.calibration`, which re-exports it) so
that module stays at its fitting code; a calibrator is anything with ``n_classes_`` and
``transform`` (:class:`ProbabilityMap`), so this module imports numpy only.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class ProbabilityMap(Protocol):
    """What :class:`CalibratedPredictor` needs of a fitted calibrator."""

    n_classes_: int | None

    def transform(self, proba: Any) -> np.ndarray:
        """Calibrated probabilities (n, k) of probabilities (n, k)."""
        ...


class CalibratedPredictor:
    """A picklable predictor: ``calibrator.transform(predictor.predict_proba(x))``.

    A predictor with ``classes_`` (sklearn/imblearn) is read by class label, so a model that
    never saw a class returns probability 0 in that class's column of the k the calibrator
    was fitted on.

    Args:
        predictor: anything with ``predict_proba(x) -> (n, k)`` (or one column per
            ``classes_`` label).
        calibrator: a fitted calibrator.
    """

    def __init__(self, predictor: Any, calibrator: ProbabilityMap) -> None:
        if calibrator.n_classes_ is None:
            raise ValueError("CalibratedPredictor needs a fitted calibrator")
        self.predictor = predictor
        self.calibrator = calibrator

    def predict_proba(self, x: Any) -> np.ndarray:
        """Calibrated class probabilities (n, k), k = the calibrator's classes."""
        proba = np.asarray(self.predictor.predict_proba(x), dtype=np.float64)
        classes = getattr(self.predictor, "classes_", None)
        k = int(self.calibrator.n_classes_)
        if classes is not None and not np.array_equal(classes, np.arange(k)):
            full = np.zeros((len(proba), k))
            full[:, np.asarray(classes, dtype=np.int64)] = proba
            proba = full
        return self.calibrator.transform(proba)
