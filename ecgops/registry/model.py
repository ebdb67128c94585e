"""A registered beat model as the platform uses it: resolve, trust-check, load, predict.

- :func:`resolve_model_uri` turns ``--task`` / ``--model`` into a URI (the task's champion by
  default) and :func:`check_trusted` refuses models from outside the project's registry and
  folders (pickled models run code when loaded).
- :func:`load_model` loads a pyfunc model into a :class:`LoadedModel`: its class names and
  input tolerance (from the model's ``ecgops`` metadata) and the one chunked prediction of the
  platform, sized by ``serving.batch_chunk_size``. Batch prediction, record-level diagnosis,
  the record rule fitted at registration and the promotion gate all predict through it.
- :func:`record_rule` reads the record-level decision rule stored on a registered version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.errors import RegistryError
from ecgops.registry.client import CHAMPION, mlflow_client, registered_model_name, uri_version
from ecgops.registry.pyfunc import INPUT_TOLERANCE, METADATA_KEY, beat_frame, output_columns

log = logging.getLogger(__name__)

TRUSTED_SCHEMES = ("models:/", "runs:/")
FOREIGN_SCHEMES = ("http:", "https:", "s3:", "gs:", "dbfs:")
TASKS = ("ptb", "mitbih")


# ---- which model ------------------------------------------------------------------------------


def resolve_model_uri(cfg: Config, task: str | None = None, model: str | None = None) -> str:
    """The model to use: ``model`` if given (checked), else the task's champion.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``: use ``models:/ecgops-{task}@champion``.
        model: an explicit URI: ``models:/...`` or ``runs:/...`` (resolved against the
            project's tracking server) or a local model folder inside the project.

    Returns:
        The model URI.

    Raises:
        RegistryError: neither given, or a model from outside the project's registry.
    """
    if model:
        check_trusted(cfg, model)
        return model
    if not task:
        raise RegistryError("give a task (its champion is used) or a model URI")
    if task not in TASKS:
        raise RegistryError(f"unknown task {task!r}; expected ptb or mitbih")
    return f"models:/{registered_model_name(cfg, task)}@{CHAMPION}"


def check_trusted(cfg: Config, uri: str) -> None:
    """Refuse model URIs outside the project's own registry and folders.

    Args:
        cfg: configuration (project root, artifact root).
        uri: the model URI or path.

    Raises:
        RegistryError: another scheme (``http:``, ``s3:`` ...) or a path outside the project.
    """
    if uri.startswith(TRUSTED_SCHEMES):
        return
    if "://" in uri or uri.startswith(FOREIGN_SCHEMES):
        raise RegistryError(
            f"refusing to load a model from {uri}: pickled models execute code when loaded, so "
            "only the project's registry (models:/..., runs:/...) or a folder inside the "
            "project is trusted"
        )
    path = Path(uri).expanduser().resolve()
    roots = [cfg.root.resolve()]
    artifact_root = cfg.artifact_root
    if artifact_root.startswith("file://"):
        roots.append(Path(artifact_root[len("file://") :]).resolve())
    if not any(path == r or r in path.parents for r in roots):
        raise RegistryError(
            f"refusing to load a model from {path}: it is outside the project ({cfg.root}); "
            "register it first or copy it into the project"
        )


# ---- the loaded model -------------------------------------------------------------------------


def model_classes(pyfunc: Any) -> tuple[list[str], float]:
    """Class names and input tolerance recorded in a pyfunc model's metadata.

    Args:
        pyfunc: a loaded ``mlflow.pyfunc.PyFuncModel``.

    Returns:
        ``(class names, tolerance)``; without ecgops metadata, names ``"0".."k-1"`` from the
        output signature's ``p_*`` columns and the default tolerance.
    """
    info = (pyfunc.metadata.metadata or {}).get(METADATA_KEY, {})
    names = info.get("class_names")
    if not names:
        signature = pyfunc.metadata.signature
        outputs = signature.outputs.input_names() if signature else []
        names = [str(j) for j in range(sum(1 for c in outputs if str(c).startswith("p_")))]
    return list(names), float(info.get("tolerance", INPUT_TOLERANCE))


def model_leads(pyfunc: Any) -> list[str]:
    """The leads a multi-lead model reads (its metadata's ``leads``); [] for one lead."""
    info = (pyfunc.metadata.metadata or {}).get(METADATA_KEY, {})
    return list(info.get("leads") or [])


@dataclass(frozen=True)
class LoadedModel:
    """A loaded pyfunc beat model with its classes, predicting in chunks.

    Attributes:
        pyfunc: the ``mlflow.pyfunc.PyFuncModel``.
        class_names: class names in label order (the output columns ``p_0..p_{k-1}``).
        tolerance: slack around [0, 1] its inputs are checked with.
        chunk_size: rows per ``predict`` call (``serving.batch_chunk_size``).
        uri: where it was loaded from (None for a model given already loaded).
    """

    pyfunc: Any
    class_names: list[str]
    tolerance: float
    chunk_size: int
    uri: str | None = None
    leads: tuple[str, ...] = ()  # multi-lead rows: the leads of x, (n, n_leads * 187)

    @classmethod
    def of(
        cls,
        pyfunc: Any,
        chunk_size: int,
        uri: str | None = None,
        class_names: list[str] | None = None,
        input_leads: list[str] | None = None,
    ) -> LoadedModel:
        """Wrap a loaded pyfunc model.

        Args:
            pyfunc: the loaded model.
            chunk_size: rows per prediction call.
            uri: where it came from.
            class_names: the classes to read (default: those in the model's metadata).
            input_leads: a multi-lead model's rows ``x`` hold these leads side by side
                (default: the model's own leads); the model picks its leads by name.

        Returns:
            The wrapped model.
        """
        names, tolerance = model_classes(pyfunc)
        leads = tuple(model_leads(pyfunc))
        if leads and input_leads:
            leads = tuple(input_leads)
        size = max(1, int(chunk_size))
        return cls(pyfunc, list(class_names or names), tolerance, size, uri, leads)

    @property
    def n_classes(self) -> int:
        """Number of classes (output probability columns)."""
        return len(self.class_names)

    def predict_frame(self, x: np.ndarray) -> pd.DataFrame:
        """The model output ``pred, pred_name, p_0..p_{k-1}`` for beats ``x`` (n, 187).

        Args:
            x: beats, any float dtype.

        Returns:
            One row per beat, in order.
        """
        cols = output_columns(self.n_classes)
        step = self.chunk_size
        parts = [
            self.pyfunc.predict(beat_frame(x[i : i + step], list(self.leads)))[cols]
            for i in range(0, len(x), step)
        ]
        if not parts:
            return pd.DataFrame(columns=cols)
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, k) of beats ``x`` (n, 187), predicted in chunks.

        Args:
            x: beats.

        Returns:
            float64 probabilities, column ``j`` for class ``j``.
        """
        if len(x) == 0:
            return np.zeros((0, self.n_classes))
        cols = [f"p_{j}" for j in range(self.n_classes)]
        return self.predict_frame(x)[cols].to_numpy(np.float64)


def load_pyfunc(model_uri: str, cfg: Config | None = None) -> Any:
    """Load a pyfunc model (with the project's tracking URI when ``cfg`` is given).

    Args:
        model_uri: ``models:/...``, ``runs:/...`` or a local model folder.
        cfg: configuration (tracking URI).

    Returns:
        The ``mlflow.pyfunc.PyFuncModel``.

    Raises:
        RegistryError: the model (e.g. the champion alias) does not exist or cannot be read.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    if cfg is not None:
        from ecgops.tracking import configure

        configure(cfg)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        hint = ""
        if "@" in model_uri:
            hint = " (no such alias yet: run `ecgops register` and `ecgops promote` first)"
        raise RegistryError(f"cannot load model {model_uri}: {exc.message}{hint}") from exc
    except OSError as exc:
        raise RegistryError(f"cannot load model {model_uri}: {exc}") from exc


def load_model(model_uri: str, cfg: Config) -> LoadedModel:
    """Trust-check and load a model for prediction.

    Args:
        model_uri: ``models:/...``, ``runs:/...`` or a local model folder inside the project.
        cfg: configuration (trust check, tracking URI, ``serving.batch_chunk_size``).

    Returns:
        The loaded model.

    Raises:
        RegistryError: an untrusted location, or the model cannot be loaded.
    """
    check_trusted(cfg, model_uri)
    pyfunc = load_pyfunc(model_uri, cfg)
    set_prediction_threads(pyfunc, cfg.serving.n_jobs)
    return LoadedModel.of(pyfunc, cfg.serving.batch_chunk_size, model_uri)


def set_prediction_threads(pyfunc: Any, n_jobs: int) -> bool:
    """Let a loaded classical model predict on ``n_jobs`` threads (``serving.n_jobs``).

    A tree model keeps the ``n_jobs`` it was fitted with (``classical.n_jobs``: 1, because the
    pipeline trains two models at once on two cores), but a prediction runs alone: a random
    forest or LightGBM then predicts on one core of several. Sets the ``n_jobs`` of the
    predictor's final estimator (a pipeline's last step); the feature step and the nets (torch
    uses every core in a prediction process) are left as they are.

    Args:
        pyfunc: a loaded ``mlflow.pyfunc`` model.
        n_jobs: threads, -1 for every core.

    Returns:
        True when an estimator's ``n_jobs`` was set.
    """
    try:
        predictor = pyfunc.unwrap_python_model().predictor
    except Exception:  # noqa: BLE001 - not an ecgops model: nothing to tune
        return False
    estimator = final_estimator(predictor)
    if not hasattr(estimator, "get_params") or "n_jobs" not in estimator.get_params():
        return False
    estimator.set_params(n_jobs=n_jobs)
    return True


def final_estimator(predictor: Any) -> Any:
    """A pipeline's last step (the classifier), or the predictor itself (a net, an estimator)."""
    return predictor[-1] if hasattr(predictor, "steps") else predictor


def record_rule(cfg: Config, model_uri: str) -> dict[str, Any] | None:
    """The record rule stored on a registered version.

    Args:
        cfg: configuration (tracking URI).
        model_uri: ``models:/name@alias`` or ``models:/name/version``.

    Returns:
        The rule (see :mod:`ecgops.evaluation.records`), or None (argmax) for any other URI,
        a version without a rule, or a version that cannot be read.
    """
    from ecgops.evaluation.records import RULE_TAG, rule_from_tag

    if not model_uri.startswith("models:/"):
        return None
    try:
        mv = uri_version(mlflow_client(cfg), model_uri)
    except Exception as exc:  # noqa: BLE001 - the load that follows reports a missing model
        log.debug("no record rule for %s: %s", model_uri, exc)
        return None
    return rule_from_tag((mv.tags or {}).get(RULE_TAG)) if mv is not None else None
