"""Probability calibration, fitted on validation predictions only.

A *calibrator* maps a model's class probabilities (n, k) to calibrated ones (n, k):

- :class:`TemperatureScaler` (nets): one temperature ``T`` for all classes,
  ``p_c ** (1 / T)`` renormalised (the same as ``softmax(logits / T)``), fitted by minimising
  the validation negative log-likelihood over ``log T`` in a bounded range. It never changes
  the arg-max.
- :class:`IsotonicCalibrator` / :class:`SigmoidCalibrator` (classical models): binary tasks get
  one map on ``p(class 1)``; multiclass tasks get one one-vs-rest map per class, then each row
  is renormalised to sum to 1. Isotonic uses sklearn's ``IsotonicRegression``; sigmoid is Platt
  scaling (a logistic fit on ``logit(p)`` with Platt's smoothed targets).
- :class:`IdentityCalibrator` (``none``, or calibration skipped): returns its input.

Data roles: every ``fit`` takes the validation labels and probabilities explicitly and nothing
else, so a calibrator cannot see a test row. Test predictions are only *transformed* and
*reported* (:func:`calibration_record`), never fitted on.

A class the model never gives probability (absent from training: the column is 0 on every
validation row) keeps probability 0 with every method; isotonic and sigmoid also give 0 to a
class without validation rows (no evidence to fit its map). Too few validation rows
(``min_val_rows``) or fewer than two usable classes: the identity, with ``skipped_reason``.
The metrics (:func:`brier_score`, :func:`reliability_bins`, :func:`calibration_report`,
:func:`calibration_record`) live in :mod:`ecgops.evaluation.calibration_metrics` and are
re-exported here, and so is :class:`CalibratedPredictor`
(:mod:`ecgops.evaluation.calibrated`). The module imports numpy,
scipy and sklearn only, so served models unpickle it without torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, softmax
from sklearn.isotonic import IsotonicRegression

from ecgops.evaluation.calibrated import CalibratedPredictor
from ecgops.evaluation.calibration_metrics import (
    brier_score,
    calibration_record,
    calibration_report,
    check_labels,
    check_proba,
    reliability_bins,
)

if TYPE_CHECKING:
    from ecgops.config import CalibrationConfig

log = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "CalibratedPredictor",
    "Calibrator",
    "IdentityCalibrator",
    "IsotonicCalibrator",
    "SigmoidCalibrator",
    "TemperatureScaler",
    "brier_score",
    "calibration_record",
    "calibration_report",
    "fit_calibrator",
    "fit_from_config",
    "method_for",
    "reliability_bins",
]

METHODS = ("temperature", "isotonic", "sigmoid", "none")
DEFAULT_TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Default range of the temperature (params.yaml ``calibration.temperature_bounds`` wins)."""
DEFAULT_EPS = 1e-12
"""Default probability clipping before ``log``/``logit`` (``calibration.eps`` wins)."""
NET_FAMILIES = ("deep", "transfer")


def _renormalise(out: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows divided by their sum; a row that sums to 0 takes the matching ``fallback`` row."""
    total = out.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    out = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
    if empty.any():
        back = fallback[empty]
        out[empty] = back / back.sum(axis=1, keepdims=True)
    return out


class Calibrator:
    """Base class: the identity. Subclasses override :meth:`_fit` and :meth:`_transform`.

    Attributes:
        method: ``temperature``, ``isotonic``, ``sigmoid`` or ``none``.
        n_classes_: number of probability columns seen in ``fit``.
        n_fit_: validation rows it was fitted on.
        skipped_reason: why it was not fitted (it is then the identity), else None.
    """

    method = "none"

    def __init__(self) -> None:
        self.n_classes_: int | None = None
        self.n_fit_ = 0
        self.skipped_reason: str | None = None

    def fit(self, y_val: Any, proba_val: Any) -> Calibrator:
        """Fit on validation labels and probabilities (and nothing else).

        Args:
            y_val: validation labels, shape (n,).
            proba_val: the model's validation probabilities, shape (n, k).

        Returns:
            ``self``, fitted.
        """
        p = self._inputs(proba_val)
        self.n_classes_ = p.shape[1]
        y = check_labels(y_val, len(p), p.shape[1])
        self.n_fit_ = len(y)
        self._fit(y, p)
        return self

    def transform(self, proba: Any) -> np.ndarray:
        """Calibrated probabilities (n, k) for the model's probabilities ``proba`` (n, k)."""
        if self.n_classes_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(y_val, proba_val)")
        p = self._inputs(proba, self.n_classes_)
        if self.skipped_reason is not None:
            return self._identity(p)
        return self._transform(p)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about the fit (for metrics files and model metadata)."""
        return {"method": self.method, "n_fit": self.n_fit_, "skipped_reason": self.skipped_reason}

    def skip(self, reason: str) -> None:
        """Turn this calibrator into the identity, with the reason recorded and logged."""
        self.skipped_reason = reason
        log.info("%s calibration skipped: %s", self.method, reason)

    def _inputs(self, proba: Any, n_classes: int | None = None) -> np.ndarray:
        return check_proba(proba, n_classes)

    def _identity(self, p: np.ndarray) -> np.ndarray:
        return p.copy()

    def _fit(self, y: np.ndarray, p: np.ndarray) -> None:
        """Nothing to fit for the identity."""

    def _transform(self, p: np.ndarray) -> np.ndarray:
        return self._identity(p)


class IdentityCalibrator(Calibrator):
    """``none``: returns the probabilities unchanged."""


class TemperatureScaler(Calibrator):
    """One temperature for all classes, fitted on validation NLL (for nets).

    With probabilities, ``log(max(p, eps))`` acts as the logits: a probability that underflowed
    to 0 (a very confident net) is softened like any other, while a class that has probability 0
    on every validation row (absent from training) keeps probability 0.

    Args:
        bounds: smallest and largest temperature searched (the search runs over ``log T``).
        inputs: ``proba`` (probabilities) or ``logits``. ``transform`` takes the same kind and
            always returns probabilities.
        eps: probabilities are clipped to at least ``eps`` before the logarithm.
    """

    method = "temperature"

    def __init__(
        self,
        bounds: Sequence[float] = DEFAULT_TEMPERATURE_BOUNDS,
        inputs: str = "proba",
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__()
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
        self.eps = float(eps)
        self.dead_: list[int] = []
        low, high = (float(b) for b in bounds)
        if not 0 < low < high:
            raise ValueError(f"temperature bounds must satisfy 0 < low < high, got {bounds}")
        if inputs not in ("proba", "logits"):
            raise ValueError(f"inputs must be 'proba' or 'logits', got {inputs!r}")
        self.bounds = (low, high)
        self.inputs = inputs
        self.temperature_ = 1.0
        self.nll_before_: float | None = None
        self.nll_after_: float | None = None

    def _inputs(self, scores: Any, n_classes: int | None = None) -> np.ndarray:
        if self.inputs == "proba":
            return check_proba(scores, n_classes)
        z = np.asarray(scores, dtype=np.float64)
        if z.ndim != 2 or (n_classes is not None and z.shape[1] != n_classes):
            raise ValueError(f"logits: expected shape (n, {n_classes or 'k'}), got {z.shape}")
        if not np.isfinite(z).all():
            raise ValueError("logits: NaN or infinite values")
        return z

    def _logits(self, s: np.ndarray) -> np.ndarray:
        if self.inputs == "logits":
            return s
        z = np.log(np.maximum(s, self.eps))
        z[:, self.dead_] = -np.inf  # classes the model never predicts stay at 0
        return z

    def _identity(self, s: np.ndarray) -> np.ndarray:
        return softmax(self._logits(s), axis=1) if self.inputs == "logits" else s.copy()

    def _fit(self, y: np.ndarray, s: np.ndarray) -> None:
        if self.inputs == "proba":
            self.dead_ = [int(c) for c in np.flatnonzero(s.max(axis=0) <= 0)]
        z = self._logits(s)
        usable = np.isfinite(z[np.arange(len(y)), y])  # rows of a class the model never gives
        if len(np.unique(y[usable])) < 2:
            self.skip("validation has fewer than two classes the model gives probability to")
            return
        z, y = z[usable], y[usable]

        def nll(log_t: float) -> float:
            return float(-log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

        lo, hi = np.log(self.bounds)
        result = minimize_scalar(nll, bounds=(lo, hi), method="bounded")
        self.temperature_ = float(np.exp(result.x))
        self.nll_before_ = nll(0.0)
        self.nll_after_ = float(result.fun)

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return softmax(self._logits(s) / self.temperature_, axis=1)

    def describe(self) -> dict[str, Any]:
        """Method, rows, the temperature and the validation NLL before/after."""
        out = super().describe()
        out.update(
            temperature=self.temperature_,
            bounds=list(self.bounds),
            inputs=self.inputs,
            never_predicted_classes=list(self.dead_),
            val_nll_before=self.nll_before_,
            val_nll_after=self.nll_after_,
        )
        return out


class _OneVsRestCalibrator(Calibrator):
    """Per-class maps (binary: one on p(class 1)), then rows renormalised to sum to 1."""

    def __init__(self, min_class_rows: int = 1) -> None:
        super().__init__()
        self.min_class_rows = max(1, int(min_class_rows))
        self.maps_: dict[int, Any] = {}
        self.inactive_: dict[int, str] = {}

    def _fit_map(self, p: np.ndarray, target: np.ndarray) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_map(self, fitted: Any, p: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _fit(self, y: np.ndarray, p: np.ndarray) -> None:
        k = p.shape[1]
        for c in range(k):
            n_c = int((y == c).sum())
            if n_c == 0:
                self.inactive_[c] = "absent from validation"
            elif n_c < getattr(self, "min_class_rows", 1):
                self.inactive_[c] = f"{n_c} validation rows, fewer than min_class_rows"
            elif p[:, c].max() <= 0:
                self.inactive_[c] = "never given probability (absent from training)"
        active = [c for c in range(k) if c not in self.inactive_]
        if len(active) < 2:
            self.skip(f"fewer than two classes to calibrate ({self.inactive_})")
            return
        if k == 2:
            if self.inactive_:
                self.skip(f"binary task with a class it cannot calibrate ({self.inactive_})")
                return
            self.maps_[1] = self._fit_map(p[:, 1], (y == 1).astype(np.float64))
            return
        for c in active:
            self.maps_[c] = self._fit_map(p[:, c], (y == c).astype(np.float64))

    def _transform(self, p: np.ndarray) -> np.ndarray:
        if p.shape[1] == 2:
            p1 = np.clip(self._apply_map(self.maps_[1], p[:, 1]), 0.0, 1.0)
            return np.column_stack([1.0 - p1, p1])
        # a class without a map (too few validation rows to fit one) keeps the model's own
        # probability: no evidence is no reason to rule the class out
        out = np.array(p, dtype=np.float64, copy=True)
        for c, fitted in self.maps_.items():
            out[:, c] = np.clip(self._apply_map(fitted, p[:, c]), 0.0, 1.0)
        # a row every fitted map sends to 0 keeps the model's own row (fitted classes only,
        # or the whole row when the model put all its mass on unfitted classes)
        active = np.zeros(p.shape[1], dtype=bool)
        active[list(self.maps_)] = True
        fallback = np.where(active, p, 0.0)
        empty = fallback.sum(axis=1) <= 0
        fallback[empty] = p[empty]
        return _renormalise(out, fallback)

    def describe(self) -> dict[str, Any]:
        """Method, rows, the fitted classes and why the others were not fitted."""
        out = super().describe()
        out.update(
            calibrated_classes=sorted(int(c) for c in self.maps_),
            inactive_classes={str(c): why for c, why in self.inactive_.items()},
        )
        return out


class IsotonicCalibrator(_OneVsRestCalibrator):
    """Isotonic regression per class (sklearn ``IsotonicRegression``, clipped to [0, 1])."""

    method = "isotonic"

    def _fit_map(self, p: np.ndarray, target: np.ndarray) -> IsotonicRegression:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        return iso.fit(p, target)

    def _apply_map(self, fitted: IsotonicRegression, p: np.ndarray) -> np.ndarray:
        return fitted.predict(p)


class SigmoidCalibrator(_OneVsRestCalibrator):
    """Platt scaling per class: ``sigmoid(a * logit(p) + b)`` with Platt's smoothed targets.

    Args:
        eps: probabilities are clipped to ``[eps, 1 - eps]`` before ``logit``.
    """

    method = "sigmoid"

    def __init__(self, eps: float = DEFAULT_EPS, min_class_rows: int = 1) -> None:
        super().__init__(min_class_rows)
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
        self.eps = float(eps)

    def _score(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(p, self.eps, 1.0 - self.eps)
        return np.log(q) - np.log1p(-q)

    def _fit_map(self, p: np.ndarray, target: np.ndarray) -> tuple[float, float]:
        s = self._score(p)
        n_pos = float(target.sum())
        n_neg = float(len(target) - n_pos)
        t = np.where(target > 0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

        def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
            z = ab[0] * s + ab[1]
            # cross-entropy of sigmoid(z) against the smoothed targets, and its gradient
            value = float(np.sum(np.logaddexp(0.0, z) - t * z))
            r = expit(z) - t
            return value, np.array([np.dot(r, s), r.sum()])

        start = np.array([1.0, 0.0])
        result = minimize(loss, start, jac=True, method="L-BFGS-B")
        a, b = result.x
        return float(a), float(b)

    def _apply_map(self, fitted: tuple[float, float], p: np.ndarray) -> np.ndarray:
        a, b = fitted
        return expit(a * self._score(p) + b)

    def describe(self) -> dict[str, Any]:
        """Also the fitted slope and intercept per class."""
        out = super().describe()
        out["platt"] = {str(c): list(ab) for c, ab in self.maps_.items()}
        return out


def fit_calibrator(
    method: str,
    y_val: Any,
    proba_val: Any,
    classes: Sequence[Any],
    *,
    min_val_rows: int = 0,
    min_class_rows: int = 1,
    temperature_bounds: Sequence[float] = DEFAULT_TEMPERATURE_BOUNDS,
    eps: float = DEFAULT_EPS,
    inputs: str = "proba",
) -> Calibrator:
    """Fit a calibrator of ``method`` on validation predictions only.

    Args:
        method: ``temperature``, ``isotonic``, ``sigmoid`` or ``none``.
        y_val: validation labels (n,).
        proba_val: the model's validation probabilities (n, k), k = ``len(classes)``
            (logits when ``inputs='logits'``, temperature only); None or no rows: the
            identity, skipped with the reason "no validation rows".
        classes: the task's classes in column order (labels or names).
        min_val_rows: with fewer validation rows the calibrator is the identity, with the
            reason recorded in ``skipped_reason`` and logged.
        min_class_rows: per-class maps (isotonic, sigmoid) only for classes with at least this
            many validation rows; the others keep the model's own probability.
        temperature_bounds: temperature search range.
        eps: probability clipping before ``log`` (temperature) or ``logit`` (sigmoid).
        inputs: ``proba`` or ``logits`` (temperature only).

    Returns:
        The fitted calibrator.

    Raises:
        ValueError: unknown method, or arrays that do not match ``classes``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    if method == "temperature":
        calibrator: Calibrator = TemperatureScaler(temperature_bounds, inputs, eps)
    elif method == "isotonic":
        calibrator = IsotonicCalibrator(min_class_rows)
    elif method == "sigmoid":
        calibrator = SigmoidCalibrator(eps, min_class_rows)
    else:
        calibrator = IdentityCalibrator()
    if inputs != "proba" and method != "temperature":
        raise ValueError(f"inputs={inputs!r} is only supported by temperature scaling")
    n_rows = 0 if proba_val is None else len(proba_val)
    if n_rows == 0:
        calibrator.n_classes_ = len(classes)
        if method != "none":
            calibrator.skip("no validation rows")
        return calibrator
    width = np.shape(proba_val)[1] if np.ndim(proba_val) == 2 else None
    if width != len(classes):
        raise ValueError(
            f"validation probabilities have {width} columns for {len(classes)} classes"
        )
    if method != "none" and n_rows < min_val_rows:
        calibrator.n_classes_ = len(classes)
        calibrator.skip(f"validation has {n_rows} rows, fewer than min_val_rows={min_val_rows}")
        return calibrator
    return calibrator.fit(y_val, proba_val)


def method_for(config: CalibrationConfig, family: str) -> str:
    """The configured method for a model family (``classical``; ``deep``/``transfer`` nets)."""
    if family == "classical":
        return config.classical
    if family in NET_FAMILIES:
        return config.deep
    raise ValueError(f"unknown model family {family!r}; expected classical or {NET_FAMILIES}")


def fit_from_config(
    config: CalibrationConfig, family: str, y_val: Any, proba_val: Any, classes: Sequence[Any]
) -> Calibrator:
    """:func:`fit_calibrator` with the method and knobs of the ``calibration`` section.

    Args:
        config: ``cfg.calibration``.
        family: ``classical``, ``deep`` or ``transfer``.
        y_val, proba_val: validation labels and probabilities (never test rows).
        classes: the task's classes in column order.

    Returns:
        The fitted (or skipped, identity) calibrator.
    """
    return fit_calibrator(
        method_for(config, family),
        y_val,
        proba_val,
        classes,
        min_val_rows=config.min_val_rows,
        min_class_rows=config.min_class_rows,
        temperature_bounds=config.temperature_bounds,
        eps=config.eps,
    )
