"""Self-contained MLflow pyfunc model around any beat predictor.

A *predictor* is a picklable object with ``predict_proba(x: float32[n, 187]) -> float[n, k]``:
an sklearn/imblearn pipeline, a feature pipeline, or a torch module wrapper. The pyfunc
validates Kaggle-layout input rows (187 values, or 188 with an ignored label column) and
returns ``pred``, ``pred_name`` and ``p_0 .. p_{k-1}``: one probability column for every class
of the task, whatever classes the predictor saw in training (``p_j`` is class ``j``, mapped by
the predictor's ``classes_`` label, 0 for a class it never saw). With a calibrator (fitted on
the model's validation predictions, :mod:`ecgops.evaluation.calibration`) the probabilities
are ``calibrator.transform`` of the predictor's: the model serves calibrated probabilities.

Why the signature declares outputs only: MLflow 3 enforces an input schema *before* the model
sees the data. A named schema (``x0 .. x186``) rejects the Kaggle layout's unnamed columns and
plain arrays/lists ("Model is missing inputs"); an unnamed column schema silently drops extra
columns (a 200-column row would be cut to 187); a tensor schema rejects DataFrames and float32.
So the model validates its input itself (:func:`coerce_beats`) and every layout works the same
way through ``mlflow.pyfunc.load_model(...).predict`` and ``mlflow models serve``. The expected
input is recorded in the model's metadata (``ecgops`` key) and checked by the promotion gate.
Invalid input raises :class:`InputError`, an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``,
so the scoring server answers HTTP 400 with our message.

**Context models.** A model that reads the beats' RR context (``context_columns``, see
:mod:`ecgops.features.context`) takes named rows: ``x0..x186`` and its context columns, which its
predictor receives side by side, (n, 187 + c). Its metadata lists them
(``ecgops.context_columns``, input layout :data:`CONTEXT_LAYOUT`) and its signature declares
them as inputs. The model refuses rows without them (:func:`coerce_context`: an
:class:`InputError` naming the missing columns, HTTP 400 when served); the signature marks them
optional only because MLflow's own refusal of a missing required column quotes the whole
input. Kaggle-layout rows have no context: they are for the morphology-only models, which
ignore any extra columns, context included.
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
CONTEXT_LAYOUT = "beats-187+context"
"""The input contract of a context model: named ``x0..x186`` and its context columns."""
MULTILEAD_LAYOUT = "multilead-187"
"""The input contract of a multi-lead model: named ``<lead>_x0..<lead>_x186`` of its leads."""
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


def coerce_leads(
    model_input: Any, leads: list[str], tolerance: float, source: str = "input"
) -> np.ndarray:
    """Multi-lead rows as float32 (n, n_leads * 187), leads side by side in ``leads`` order.

    Args:
        model_input: a DataFrame with the columns ``<lead>_x0..<lead>_x186`` of every lead
            (any order, other columns ignored), or an array (n, n_leads * 187) or
            (n, n_leads, 187) in ``leads`` order.
        leads: the model's leads.
        tolerance: how far outside ``[0, 1]`` a value may lie.
        source: how to name the input in messages.

    Returns:
        The beats, float32.

    Raises:
        InputError: missing leads (named), wrong width, or values :func:`coerce_beats` refuses.
    """
    from ecgops.data.multilead_schema import lead_columns

    if isinstance(model_input, pd.DataFrame):
        missing = [
            lead for lead in leads if f"{lead}_x0" not in model_input or f"{lead}_x{BEAT_LEN - 1}"
            not in model_input
        ]  # fmt: skip
        if missing:
            raise InputError(
                f"{source}: no columns for lead(s) {', '.join(missing)}; this model reads "
                f"{', '.join(leads)} as <lead>_x0..<lead>_x{BEAT_LEN - 1}"
            )
        model_input = model_input[lead_columns(leads, BEAT_LEN)]
    try:
        x = np.asarray(model_input, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: not a table of numbers ({exc})") from exc
    width = len(leads) * BEAT_LEN
    if x.ndim == 3:
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != width:
        raise InputError(
            f"{source}: expected {width} values per row ({len(leads)} leads x {BEAT_LEN}), "
            f"got shape {x.shape}"
        )
    beats = coerce_beats(x.reshape(-1, BEAT_LEN), tolerance, source)
    return beats.reshape(len(x), width)


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


def beat_frame(x: np.ndarray, leads: list[str] | None = None) -> pd.DataFrame:
    """Beats as a DataFrame with columns ``x0..x186`` (and their context, if ``x`` has it).

    The named layout suits every model: ours (no input schema) and models logged with a named
    ``x0..x186`` input schema, whose enforcement rejects plain arrays. Rows of 187 values then
    :data:`ecgops.features.context.ALL_CONTEXT_COLUMNS` (``register.as_xy(..., context=True)``)
    get those names too: a context model reads its columns, any other model ignores them.

    With ``leads`` (a multi-lead model's), rows of ``len(leads) * 187`` values are named
    ``<lead>_x0..<lead>_x186`` lead by lead.

    Raises:
        ValueError: rows of another width.
    """
    from ecgops.features.context import ALL_CONTEXT_COLUMNS

    x = np.asarray(x, dtype=np.float64)
    if leads:
        from ecgops.data.multilead_schema import lead_columns

        return pd.DataFrame(x.reshape(len(x), -1), columns=lead_columns(leads, BEAT_LEN))
    if x.ndim == 2 and x.shape[1] == BEAT_LEN + len(ALL_CONTEXT_COLUMNS):
        return pd.DataFrame(x, columns=SIGNAL_COLUMNS + ALL_CONTEXT_COLUMNS)
    return pd.DataFrame(x, columns=SIGNAL_COLUMNS)


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
        calibrator: Any | None = None,
        context_columns: list[str] | None = None,
        leads: list[str] | None = None,
    ) -> None:
        self.predictor = predictor
        self.leads = list(leads or [])  # a multi-lead model's leads (<lead>_x0..), or none
        self.task = task
        self.class_names = list(class_names)
        self.tolerance = float(tolerance)
        self.calibrator = calibrator  # maps the predictor's (n, k) probabilities, or None
        self.context_columns = list(context_columns or [])  # read beside x0..x186, or none

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for validated beats: one column per class of the task, (n, k).

        A predictor that knows its classes (``classes_``, as every sklearn/imblearn
        estimator) is read by class label: a class missing from its training data gets
        probability 0 in its own column. Other predictors (the torch nets, built with one
        output per class of the task) must return k columns in label order.

        Args:
            x: validated beats (n, 187), then a context model's context columns.

        Returns:
            float64 probabilities (n, k).

        Raises:
            RuntimeError: the predictor's output cannot be mapped onto the task's classes.
        """
        k = len(self.class_names)
        classes = getattr(self.predictor, "classes_", None)
        if classes is not None:
            from ecgops.models.classical import predict_proba_full

            known = np.asarray(classes)
            if not np.isin(known, np.arange(k)).all():
                raise RuntimeError(f"predictor classes {known.tolist()} are not labels 0..{k - 1}")
            proba = predict_proba_full(self.predictor, x, k)
        else:
            proba = np.asarray(self.predictor.predict_proba(x), dtype=np.float64)
        expected = (len(x), k)
        if proba.shape != expected:
            raise RuntimeError(f"predictor returned shape {proba.shape}, expected {expected}")
        calibrator = getattr(self, "calibrator", None)  # models pickled before calibration
        if calibrator is not None:
            proba = calibrator.transform(proba)
        return proba

    # The hint must be exactly ``pd.DataFrame``: MLflow infers no schema from it (and enforces
    # none), while other hints would be turned into a schema. Arrays and lists work as well.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Validate the rows and return class, class name and per-class probabilities."""
        leads = getattr(self, "leads", [])  # models pickled before multi-lead models
        if leads:
            x = coerce_leads(model_input, leads, self.tolerance)
            return prediction_frame(self.predict_proba(x), self.class_names)
        columns = getattr(self, "context_columns", [])  # models pickled before context
        context = coerce_context(model_input, columns) if columns else None
        x = coerce_beats(model_input, self.tolerance)
        if context is not None:
            x = np.hstack([x, context])
        return prediction_frame(self.predict_proba(x), self.class_names)


def coerce_context(model_input: Any, columns: list[str], source: str = "input") -> np.ndarray:
    """The context columns a context model reads, float32 (n, len(columns)).

    Args:
        model_input: the rows given to the model (a DataFrame with named columns).
        columns: the model's context columns.
        source: how to name the input in messages.

    Returns:
        The values in ``columns`` order.

    Raises:
        InputError: rows without (some of) the columns, e.g. the Kaggle layout, naming them;
            or non-finite values.
    """
    from ecgops.features.context import context_error, context_values

    if not isinstance(model_input, pd.DataFrame):
        raise InputError(context_error(list(columns), source))
    try:
        return context_values(model_input, list(columns), source)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc


def model_signature(n_classes: int, context_columns: list[str] | None = None):
    """The signature: the output columns; inputs only for a context model.

    Args:
        n_classes: number of classes (``p_0..p_{k-1}``).
        context_columns: a context model's context columns: the inputs are then the named
            ``x0..x186`` and these (double). None or empty: no input schema (the model
            validates every layout itself, see the module docstring).

    Returns:
        The ``ModelSignature``.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = Schema(
        [ColSpec("long", "pred"), ColSpec("string", "pred_name")]
        + [ColSpec("double", f"p_{j}") for j in range(n_classes)]
    )
    inputs = None
    if context_columns:
        # Declared optional: MLflow's own refusal of a missing required column quotes the whole
        # input; the model refuses rows without its columns itself, naming them (coerce_context).
        names = SIGNAL_COLUMNS + list(context_columns)
        inputs = Schema([ColSpec("double", c, required=False) for c in names])
    return ModelSignature(inputs=inputs, outputs=outputs)


def model_metadata(
    task: str,
    class_names: list[str],
    tolerance: float,
    context_columns: list[str] | None = None,
    leads: list[str] | None = None,
) -> dict[str, Any]:
    """What the promotion gate checks: task, classes and the input contract.

    ``context_columns`` (empty for morphology-only models) and ``needs_context`` say whether
    the model reads the beats' RR context; ``leads`` (empty for single-lead models) which
    leads a multi-lead model reads (layout :data:`MULTILEAD_LAYOUT`).
    """
    columns = list(context_columns or [])
    layout = MULTILEAD_LAYOUT if leads else CONTEXT_LAYOUT if columns else INPUT_LAYOUT
    return {
        METADATA_KEY: {
            "task": task,
            "class_names": list(class_names),
            "input_layout": layout,
            "leads": list(leads or []),
            "beat_len": BEAT_LEN,
            "tolerance": float(tolerance),
            "needs_context": bool(columns),
            "context_columns": columns,
        }
    }


def log_beat_model(
    predictor: BeatPredictor,
    task: str,
    class_names: list[str],
    example: np.ndarray,
    tolerance: float = INPUT_TOLERANCE,
    name: str = "model",
    calibrator: Any | None = None,
    context_columns: list[str] | None = None,
    leads: list[str] | None = None,
) -> Any:
    """Log ``predictor`` as a self-contained pyfunc model in the active MLflow run.

    The ecgops package (without caches) travels with the model as code, so the model loads
    and serves without the project checkout.

    Args:
        predictor: object with ``predict_proba``.
        task: ``ptb`` or ``mitbih``.
        class_names: names in label order.
        example: a few beats (n, 187) used as the input example; for a context model
            (n, 187 + c), the beats then their ``context_columns``.
        tolerance: how far outside [0, 1] an input value may be.
        name: the logged model's name within the run.
        calibrator: fitted on the model's validation predictions; the model then returns
            ``calibrator.transform`` of the predictor's probabilities, and its metadata
            records ``ecgops.calibration`` (the calibrator's ``describe()``).
        context_columns: the RR context columns the predictor reads after ``x0..x186``
            (None: a morphology-only model).
        leads: a multi-lead model's leads: its rows are ``<lead>_x0..<lead>_x186`` of each
            (``example`` (n, n_leads * 187)); None: one lead, the Kaggle layout.

    Returns:
        MLflow's ModelInfo (``model_uri`` points at the logged model).
    """
    import mlflow.pyfunc

    columns = list(context_columns or [])
    model = BeatClassifier(
        predictor, task, class_names, tolerance, calibrator=calibrator, context_columns=columns,
        leads=leads,
    )  # fmt: skip
    metadata = model_metadata(task, class_names, tolerance, columns, leads)
    if calibrator is not None:
        metadata[METADATA_KEY]["calibration"] = calibrator.describe()
    if leads:
        example_df = beat_frame(np.asarray(example[:3]), leads)
    else:
        example_df = pd.DataFrame(
            np.asarray(example[:3], dtype=np.float64), columns=SIGNAL_COLUMNS + columns
        )
    with tempfile.TemporaryDirectory(prefix="ecgops-code-") as tmp:
        code = Path(tmp) / "ecgops"
        shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=model,
            signature=model_signature(len(class_names), columns),
            input_example=example_df,
            code_paths=[str(code)],
            pip_requirements=_pip_requirements(),
            metadata=metadata,
        )


def _pip_requirements() -> list[str]:
    from ecgops.tracking import package_versions

    versions = package_versions()
    return [f"{n}=={versions[n]}" for n in PIP_PACKAGES if versions.get(n, "absent") != "absent"]
