"""Train and evaluate one deep model (LSTM, BiLSTM, CNN, residual CNN, transformer).

One call of :func:`train_deep` is one MLflow run ``{model}-{scheme}`` in the task's experiment,
run by the shared template (:class:`~ecgops.training.run.TrainingRun`): the split's training
part (a stratified subsample when ``deep.max_train_rows`` is set) trains the net with the
engine's :func:`~ecgops.training.engine.fit`, its validation part early-stops and selects the
epoch, and the test part is scored once. The model is logged as a pyfunc
(:class:`~ecgops.training.engine.TorchBeatPredictor`); the transformer also gets attention
maps. When the split has grouped folds (PTB's patient split) and ``deep.cv`` is on, the net is
cross-validated over them (mean ± std), because one patient test part holds few MI patients.

Checkpoints live in ``models/checkpoints/{task}/{scheme}/{model}/`` (``main/`` and
``fold{k}/``): a killed run resumes where it stopped, a finished one is not trained again.

A configuration ``{net}+rr`` (``cnn+rr``, ``rescnn+rr``; tasks with RR context) is the net of
``deep.archs[net]`` with ``context_dim``: each beat's RR context, normalised as
``context.normalise`` says (:mod:`ecgops.features.context`), is concatenated after the
convolutional encoder; the engine feeds ``(x, context)`` batches and the logged model reads
``x0..x186`` and the context columns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.splits import stratified_subsample
from ecgops.features.context import model_context_columns, model_input
from ecgops.models import check_context_task, deep_config_names, split_context
from ecgops.schema import CONTEXT_COLUMNS, labels, signals
from ecgops.training.run import TrainingRun

log = logging.getLogger(__name__)


def checkpoint_dir(cfg: Config, task: str, scheme: str, model_name: str) -> Path:
    """``<models>/checkpoints/{task}/{scheme}/{model}``."""
    return cfg.path("models") / "checkpoints" / task / scheme / model_name


def task_config(cfg: Config, task: str) -> Config:
    """The config with ``deep.per_task[task]`` applied to the ``deep`` section."""
    return cfg.model_copy(update={"deep": cfg.deep.for_task(task)})


def arch_kwargs(cfg: Config, model_name: str) -> dict[str, Any]:
    """The net's architecture arguments: ``deep.archs[net]``, with ``context_dim`` for
    ``{net}+rr``."""
    arch, context = split_context(model_name)
    kwargs = dict(cfg.deep.archs[arch])
    if context:
        kwargs["context_dim"] = len(CONTEXT_COLUMNS)
    return kwargs


def run_params(cfg: Config, model_name: str) -> dict[str, Any]:
    """The params logged to MLflow for a deep run."""
    params = {
        "model": model_name,
        "arch": arch_kwargs(cfg, model_name),
        "deep": cfg.deep.model_dump(mode="json", exclude={"archs", "per_task"}),
        "seed": cfg.seed,
    }
    if split_context(model_name)[1]:
        params["context"] = cfg.context.model_dump()
        params["rhythm"] = cfg.data.rhythm.model_dump(mode="json")
    return params


def net_part(cfg: Config, beats: pd.DataFrame, context_columns: list[str]) -> tuple:
    """``(x, y)`` of a beat table, or ``(x, y, context)`` (normalised) for a context net."""
    if not context_columns:
        return signals(beats), labels(beats)
    from ecgops.features.context import context_values, normalise_context

    context = normalise_context(context_values(beats, context_columns), cfg.context.normalise)
    return signals(beats), labels(beats), context


def train_net(
    cfg: Config,
    model_name: str,
    n_classes: int,
    train: pd.DataFrame,
    val: pd.DataFrame,
    ckpt: Path,
    device: Any,
    desc: str = "train",
    context_columns: list[str] | None = None,
) -> tuple[Any, Any]:
    """Build a net from ``deep.archs`` (seeded) and fit it on beat tables.

    Args:
        cfg: configuration (``deep`` with the task's overrides applied).
        model_name: a key of ``deep.archs``, or ``{net}+rr`` (with ``context_columns``).
        n_classes: number of classes.
        train, val: beat tables (training, early stopping).
        ckpt: checkpoint folder of this fit.
        device: where to train.
        desc: progress label (also prefixes the MLflow epoch metrics unless ``train``).
        context_columns: a context net's context columns (:func:`net_part`).

    Returns:
        (net with its best-validation weights, the engine's FitResult).
    """
    columns = context_columns or []
    arch = split_context(model_name)[0]
    kwargs = arch_kwargs(cfg, model_name)
    parts = (net_part(cfg, train, columns), net_part(cfg, val, columns))
    return fit_net(cfg, arch, kwargs, n_classes, parts, ckpt, device, desc)


def fit_net(
    cfg: Config,
    arch: str,
    kwargs: dict[str, Any],
    n_classes: int,
    parts: tuple[tuple, tuple],
    ckpt: Path,
    device: Any,
    desc: str = "train",
) -> tuple[Any, Any]:
    """Build a registered net (seeded) and fit it with the engine on prepared arrays.

    Args:
        cfg: configuration (``deep`` with the task's overrides applied; ``seed``).
        arch: a net name (``ecgops.models.nets.NETS``).
        kwargs: its architecture arguments.
        n_classes: number of classes.
        parts: the engine's training and validation parts, ``(x, y[, context])`` each.
        ckpt: checkpoint folder of this fit.
        device: where to train.
        desc: progress label (also prefixes the MLflow epoch metrics unless ``train``).

    Returns:
        (net with its best-validation weights, the engine's FitResult).
    """
    from ecgops.models.nets import build_net
    from ecgops.training.engine import FitOptions, LoopConfig, fit, set_seed

    set_seed(cfg.seed)
    net = build_net(arch, n_classes, **kwargs)
    result = fit(
        net,
        parts[0],
        parts[1],
        LoopConfig.from_deep(cfg),
        n_classes=n_classes,
        options=FitOptions(checkpoint_dir=ckpt, device=device, desc=desc),
    )
    return net, result


class DeepRun(TrainingRun):
    """One net on one split (the :class:`~ecgops.training.run.TrainingRun` hooks).

    Args:
        cfg: configuration (``deep.per_task[task]`` is applied here).
        task, scheme: the split.
        model_name: a key of ``deep.archs``, or ``{net}+rr`` (a context net).
    """

    family = "deep"
    reuse_identical_fold = True

    def __init__(self, cfg: Config, task: str, scheme: str, model_name: str) -> None:
        super().__init__(task_config(cfg, task), task, scheme)
        self.model_name = model_name
        self.n_classes = len(cfg.class_names(task))
        self.device: Any = None
        if split_context(model_name)[1]:
            self.context_columns = model_context_columns(cfg.context.normalise)

    @property
    def name(self) -> str:
        """The net's name."""
        return self.model_name

    def subsample(self, train: pd.DataFrame) -> pd.DataFrame:
        """A stratified subsample of ``deep.max_train_rows``."""
        return stratified_subsample(train, self.cfg.deep.max_train_rows, self.cfg.seed)

    def prepare(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> None:
        """The device (and torch's thread count, ``deep.num_threads``)."""
        from ecgops.training.engine import select_device

        self.device = select_device(num_threads=self.cfg.deep.num_threads)

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """See :func:`run_params`, plus the training rows."""
        return {**run_params(self.cfg, self.model_name), "n_train": len(train)}

    def tags(self) -> dict[str, str]:
        """Family, model and device."""
        return {"family": self.family, "model": self.model_name, "device": self.device.type}

    def cv_enabled(self) -> bool:
        """When the split has folds and ``deep.cv`` is on."""
        return self.cfg.deep.cv and super().cv_enabled()

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Any:
        """(net, FitResult), checkpointed in ``main/`` or ``fold{k}/``."""
        sub, desc = ("main", "train") if fold is None else (f"fold{fold}", f"fold{fold}")
        ckpt = checkpoint_dir(self.cfg, self.task, self.scheme, self.model_name) / sub
        return train_net(
            self.cfg, self.model_name, self.n_classes, train, val, ckpt, self.device, desc,
            self.context_columns,
        )  # fmt: skip

    def predict(self, fitted: Any, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        """Probabilities in batches of ``deep.eval_batch_size``."""
        from ecgops.training.engine import predict_proba

        net, _ = fitted
        x, _, *context = net_part(self.cfg, beats, self.context_columns)
        batch = self.cfg.deep.eval_batch_size
        return predict_proba(net, x, batch, self.device, context[0] if context else None)

    def fit_timing(self, fitted: Any, seconds: float, n_train: int) -> dict[str, float]:
        """The engine's own fit time (summed over resumed sessions) and training speed."""
        _, result = fitted
        return {"fit_seconds": result.seconds, "train_beats_per_s": result.train_beats_per_s}

    def extra(self, fitted: Any) -> dict[str, Any]:
        """Architecture, parameter count and the training facts (history also to MLflow)."""
        import mlflow
        import torch

        net, result = fitted
        n_parameters = sum(p.numel() for p in net.parameters())
        mlflow.log_metric("n_parameters", n_parameters)
        mlflow.log_dict({"history": result.history}, "history.json")
        return {
            "model": {
                "arch": self.model_name,
                "params": arch_kwargs(self.cfg, self.model_name),
                "n_parameters": n_parameters,
                "context_columns": self.context_columns,
                "context_normalise": self.cfg.context.normalise if self.context_columns else None,
            },
            "training": {
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_balanced_accuracy": result.best_score,
                "stopped_early": result.stopped_early,
                "resumed_from_epoch": result.resumed_from,
                "device": self.device.type,
                "threads": torch.get_num_threads(),
                "imbalance": self.cfg.deep.imbalance,
            },
        }

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """Log the pyfunc model; the transformer's attention maps."""
        import mlflow

        from ecgops.registry.pyfunc import log_beat_model
        from ecgops.training.engine import TorchBeatPredictor

        net, _ = fitted
        cfg = self.cfg
        x_te, y_te = signals(parts["test"]), labels(parts["test"])
        predictor = TorchBeatPredictor(
            split_context(self.model_name)[0],
            arch_kwargs(cfg, self.model_name),
            self.n_classes,
            net.state_dict(),
            batch_size=cfg.deep.eval_batch_size,
            context_normalise=cfg.context.normalise if self.context_columns else None,
        )
        info = log_beat_model(
            predictor,
            self.task,
            cfg.class_names(self.task),
            example=model_input(parts["test"].iloc[:3], self.context_columns),
            calibrator=self.calibrator,
            context_columns=self.context_columns,
        )
        if self.model_name == "transformer":
            from ecgops.evaluation.attention import save_attention_maps

            record["attention"] = save_attention_maps(
                cfg,
                task=self.task,
                scheme=self.scheme,
                model=net,
                x_test=x_te,
                y_test=y_te,
                proba_test=self.proba["test"],
                name=self.model_name,
                device=self.device,
            )
        record["model_uri"] = info.model_uri
        record["mlflow_run_id"] = mlflow.active_run().info.run_id


def train_deep(cfg: Config, task: str, scheme: str, model_name: str) -> dict[str, Any]:
    """Train, evaluate, log and (for the transformer) explain one deep model.

    Args:
        cfg: configuration (``deep`` section, with ``deep.per_task[task]`` applied).
        task: ``ptb`` or ``mitbih``.
        scheme: ``beat`` or ``patient``.
        model_name: a key of ``deep.archs`` (lstm, bilstm, cnn, rescnn, transformer), or
            ``cnn+rr`` / ``rescnn+rr`` (the net with the RR context; tasks with context only).

    Returns:
        The metrics record written to ``outputs/metrics/{task}/{scheme}/{model}.json`` plus
        ``model_uri`` and ``mlflow_run_id``.

    Raises:
        DataError: the beat table or split is missing or stale.
        ValueError: unknown model name.
    """
    names = deep_config_names(tuple(cfg.deep.archs))
    if model_name not in names:
        raise ValueError(f"unknown deep model {model_name!r}; expected one of {sorted(names)}")
    check_context_task(model_name, task)
    record = DeepRun(cfg, task, scheme, model_name).run()
    log.info(
        "%s/%s/%s: test balanced accuracy %.3f",
        task,
        scheme,
        model_name,
        record["test"]["balanced_accuracy"],
    )
    return record
