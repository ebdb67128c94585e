"""Self-contained MLflow pyfunc model around any beat predictor.

A *predictor* is a picklable object with ``predict_proba(x: float32[n, 187]) -> float[n, k]``:
an sklearn/imblearn pipeline, a feature pipeline, or a torch module wrapper. The pyfunc
validates Kaggle-layout input rows (187 values, or 188 with an ignored label column) and
returns ``pred``, ``pred_name`` and ``p_0 .. p_{k-1}``.

Why the signature declares outputs only: MLflow 3 enforces an input schema *before* the model
sees the data. A named schema (``x0 .. x186``) rejects the Kaggle layout's unnamed columns and
plain arrays/lists ("Model is missing inputs"); an unnamed column schema silently drops extra
columns (a 200-column row would be cut to 187); a tensor schema rejects DataFrames and float32.
So the model validates its input itself (:func:`coerce_beats`) and every layout works the same
way through ``mlflow.pyfunc.load_model(...).predict`` and ``mlflow models serve``. The expected
input is recorded in the model's metadata (``ecgops`` key) and checked by the promotion gate.
Invalid input raises :class:`InputError`, an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``,
so the scoring server answers HTTP 400 with our message.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

import ecgops
from ecgops.schema import BEAT_LEN, SIGNAL_COLUMNS

LABEL_COLUMN = "label"
PACKAGE_DIR = Path(ecgops.__file__).resolve().parent
INPUT_TOLERANCE = 0.05
"""Default slack around [0, 1] for input values (float rounding in exported CSVs)."""
INPUT_LAYOUT = "kaggle-187"
"""Name of the input contract recorded in the model metadata."""
METADATA_KEY = "ecgops"
PIP_PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "imbalanced-learn",
    "lightgbm",
    "torch",
    "mlflow",
)


class BeatPredictor(Protocol):
    """Anything that maps beats to class probabilities."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        """Class probabilities, shape (n, k)."""
        ...


class InputError(MlflowException, ValueError):
    """Model input that is not a batch of Kaggle-layout beats (HTTP 400 when served)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def _first_bad_cell(frame: pd.DataFrame) -> tuple[int, int, Any]:
    """Row, column and value of the first cell that is not a number."""
    for j, col in enumerate(frame.columns):
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            return i, j, values.iloc[i]
    return -1, -1, None


def coerce_beats(model_input: Any, tolerance: float, source: str = "input") -> np.ndarray:
    """Turn Kaggle-layout rows into a float32 (n, 187) array, or raise :class:`InputError`.

    Args:
        model_input: a DataFrame (columns ``x0..x186`` [+ ``label``] in any order and with any
            other columns, or 187/188 unnamed columns), a 2-D array, or a list of rows. In the
            unnamed layout a 188th column is the label and is ignored.
        tolerance: how far outside ``[0, 1]`` a value may lie.
        source: how to name the input in messages (e.g. a file name).

    Returns:
        The beats, float32 of shape (n, 187).

    Raises:
        InputError: not 2-D, wrong width, no rows, non-numeric, NaN/inf or out-of-range values.
    """
    if isinstance(model_input, pd.DataFrame):
        named = set(SIGNAL_COLUMNS).issubset(model_input.columns)
        frame = model_input[SIGNAL_COLUMNS] if named else model_input
        try:
            x = frame.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            row, col, value = _first_bad_cell(frame)
            raise InputError(
                f"{source}: non-numeric value {value!r} in row {row}, column {col}"
            ) from exc
    else:
        try:
            x = np.asarray(model_input, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: not a table of numbers ({exc})") from exc
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InputError(f"{source}: expected a 2-D table of beats, got {x.ndim} dimensions")
    if x.shape[1] == BEAT_LEN + 1:
        x = x[:, :BEAT_LEN]
    if x.shape[1] != BEAT_LEN:
        raise InputError(
            f"{source}: expected {BEAT_LEN} values per row (or {BEAT_LEN + 1} with a label), "
            f"got {x.shape[1]}"
        )
    if x.shape[0] == 0:
        raise InputError(f"{source}: no rows")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{source}: NaN or infinite value in row {row}, column {col}")
    lo, hi = -tolerance, 1.0 + tolerance
    out = (x < lo) | (x > hi)
    if out.any():
        row, col = (int(v) for v in np.argwhere(out)[0])
        raise InputError(
            f"{source}: value {x[row, col]:.4g} in row {row}, column {col} is outside "
            f"[0, 1] (beats must be min-max normalised)"
        )
    return x.astype(np.float32)


def prediction_frame(proba: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """The output table: ``pred``, ``pred_name``, ``p_0 .. p_{k-1}``.

    Args:
        proba: class probabilities, shape (n, k).
        class_names: names in label order (length k).

    Returns:
        One row per input row.
    """
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    names = np.asarray(class_names, dtype=object)
    frame = pd.DataFrame({"pred": pred.astype(np.int64), "pred_name": names[pred]})
    for j in range(proba.shape[1]):
        frame[f"p_{j}"] = proba[:, j]
    return frame


def beat_frame(x: np.ndarray) -> pd.DataFrame:
    """Beats as a DataFrame with columns ``x0..x186``.

    The named layout suits every model: ours (no input schema) and models logged with a named
    ``x0..x186`` input schema, whose enforcement rejects plain arrays.
    """
    return pd.DataFrame(np.asarray(x, dtype=np.float64), columns=SIGNAL_COLUMNS)


def output_columns(n_classes: int) -> list[str]:
    """Column names of the model output (and of the batch prediction CSV)."""
    return ["pred", "pred_name"] + [f"p_{j}" for j in range(n_classes)]


def _python_model_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class BeatClassifier(_python_model_base()):  # type: ignore[misc]
    """The pyfunc model: validation + predictor + labelled output."""

    def __init__(
        self,
        predictor: BeatPredictor,
        task: str,
        class_names: list[str],
        tolerance: float = INPUT_TOLERANCE,
    ) -> None:
        self.predictor = predictor
        self.task = task
        self.class_names = list(class_names)
        self.tolerance = float(tolerance)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for validated beats, checked to be (n, k)."""
        proba = np.asarray(self.predictor.predict_proba(x), dtype=np.float64)
        expected = (len(x), len(self.class_names))
        if proba.shape != expected:
            raise RuntimeError(f"predictor returned shape {proba.shape}, expected {expected}")
        return proba

    # The hint must be exactly ``pd.DataFrame``: MLflow infers no schema from it (and enforces
    # none), while other hints would be turned into a schema. Arrays and lists work as well.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Validate the rows and return class, class name and per-class probabilities."""
        x = coerce_beats(model_input, self.tolerance)
        return prediction_frame(self.predict_proba(x), self.class_names)


def model_signature(n_classes: int):
    """The signature: no input schema (the model validates itself), the output columns."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = Schema(
        [ColSpec("long", "pred"), ColSpec("string", "pred_name")]
        + [ColSpec("double", f"p_{j}") for j in range(n_classes)]
    )
    return ModelSignature(inputs=None, outputs=outputs)


def model_metadata(task: str, class_names: list[str], tolerance: float) -> dict[str, Any]:
    """What the promotion gate checks: task, classes and the input contract."""
    return {
        METADATA_KEY: {
            "task": task,
            "class_names": list(class_names),
            "input_layout": INPUT_LAYOUT,
            "beat_len": BEAT_LEN,
            "tolerance": float(tolerance),
        }
    }


def log_beat_model(
    predictor: BeatPredictor,
    task: str,
    class_names: list[str],
    example: np.ndarray,
    tolerance: float = INPUT_TOLERANCE,
    name: str = "model",
) -> Any:
    """Log ``predictor`` as a self-contained pyfunc model in the active MLflow run.

    The ecgops package (without caches) travels with the model as code, so the model loads
    and serves without the project checkout.

    Args:
        predictor: object with ``predict_proba``.
        task: ``ptb`` or ``mitbih``.
        class_names: names in label order.
        example: a few beats (n, 187) used as the input example.
        tolerance: how far outside [0, 1] an input value may be.
        name: the logged model's name within the run.

    Returns:
        MLflow's ModelInfo (``model_uri`` points at the logged model).
    """
    import mlflow.pyfunc

    model = BeatClassifier(predictor, task, class_names, tolerance)
    example_df = pd.DataFrame(np.asarray(example[:3], dtype=np.float64), columns=SIGNAL_COLUMNS)
    with tempfile.TemporaryDirectory(prefix="ecgops-code-") as tmp:
        code = Path(tmp) / "ecgops"
        shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=model,
            signature=model_signature(len(class_names)),
            input_example=example_df,
            code_paths=[str(code)],
            pip_requirements=_pip_requirements(),
            metadata=model_metadata(task, class_names, tolerance),
        )


def _pip_requirements() -> list[str]:
    from ecgops.tracking import package_versions

    versions = package_versions()
    return [f"{n}=={versions[n]}" for n in PIP_PACKAGES if versions.get(n, "absent") != "absent"]
