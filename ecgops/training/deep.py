"""Train and evaluate one deep model (LSTM, BiLSTM, CNN, residual CNN, transformer).

One call of :func:`train_deep` is one MLflow run ``{model}-{scheme}`` in the task's experiment:
the split's training part (a stratified subsample when ``deep.max_train_rows`` is set) trains
the net with the engine's :func:`~ecgops.training.engine.fit`, its validation part early-stops
and selects the epoch, and the test part is scored once. Metrics, DVC plots and figures are
written by :func:`~ecgops.evaluation.results.save_evaluation`; the model is logged as a pyfunc
(:class:`~ecgops.training.engine.TorchBeatPredictor`); the transformer also gets attention
maps. For PTB's patient split the net is cross-validated over the grouped folds (mean ± std),
because one patient test part holds few MI patients.

Checkpoints live in ``models/checkpoints/{task}/{scheme}/{model}/`` (``main/`` and
``fold{k}/``): a killed run resumes where it stopped, a finished one is not trained again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.data.splits import stratified_subsample
from ecgops.schema import labels, signals

log = logging.getLogger(__name__)

CV_METRICS = ("balanced_accuracy", "auroc", "accuracy", "macro_f1", "auprc")


def checkpoint_dir(cfg: Config, task: str, scheme: str, model_name: str) -> Path:
    """``<models>/checkpoints/{task}/{scheme}/{model}``."""
    return cfg.path("models") / "checkpoints" / task / scheme / model_name


def task_config(cfg: Config, task: str) -> Config:
    """The config with ``deep.per_task[task]`` applied to the ``deep`` section."""
    return cfg.model_copy(update={"deep": cfg.deep.for_task(task)})


def fit_kwargs(cfg: Config) -> dict[str, Any]:
    """The engine settings of ``params.yaml`` ``deep`` as keyword arguments of ``fit``."""
    d = cfg.deep
    return {
        "epochs": d.epochs,
        "patience": d.patience,
        "lr": d.lr,
        "weight_decay": d.weight_decay,
        "batch_size": d.batch_size,
        "imbalance": d.imbalance,
        "schedule": d.schedule,
        "amp": d.amp,
        "grad_clip": d.grad_clip,
        "eval_batch_size": d.eval_batch_size,
        "seed": cfg.seed,
    }


def run_params(cfg: Config, model_name: str) -> dict[str, Any]:
    """The params logged to MLflow for a deep run."""
    return {
        "model": model_name,
        "arch": cfg.deep.archs[model_name],
        "deep": cfg.deep.model_dump(mode="json", exclude={"archs", "models", "per_task"}),
        "seed": cfg.seed,
    }


def train_net(
    cfg: Config,
    model_name: str,
    n_classes: int,
    train: pd.DataFrame,
    val: pd.DataFrame,
    ckpt: Path,
    device: Any,
    desc: str = "train",
) -> tuple[Any, Any]:
    """Build a net from ``deep.archs`` (seeded) and fit it on beat tables.

    Returns:
        (net with its best-validation weights, the engine's FitResult).
    """
    from ecgops.models.nets import build_net
    from ecgops.training.engine import fit, set_seed

    set_seed(cfg.seed)
    net = build_net(model_name, n_classes, **cfg.deep.archs[model_name])
    result = fit(
        net,
        (signals(train), labels(train)),
        (signals(val), labels(val)),
        n_classes=n_classes,
        checkpoint_dir=ckpt,
        device=device,
        desc=desc,
        **fit_kwargs(cfg),
    )
    return net, result


def cross_validate(
    cfg: Config,
    task: str,
    model_name: str,
    device: Any,
    reuse: tuple[dict[str, pd.DataFrame], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Grouped (patient) cross-validation of a net: fit on each fold's training part.

    Args:
        cfg: configuration.
        task: a task with grouped folds (``ptb``).
        model_name: the net.
        device: where to train.
        reuse: (parts, test probabilities) of a model already trained on the patient split;
            a fold with exactly those parts reuses its predictions instead of training again.

    Returns:
        ``{metric}_mean`` / ``{metric}_std`` (sample std over folds), ``folds`` and the
        per-fold balanced accuracies.
    """
    from ecgops.data.splits import iter_patient_folds
    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.training.engine import predict_proba

    cfg = task_config(cfg, task)
    n_classes = len(cfg.class_names(task))
    root = checkpoint_dir(cfg, task, "patient", model_name)
    per_fold = []
    for k, (train, val, test) in enumerate(iter_patient_folds(cfg, task)):
        train = stratified_subsample(train, cfg.deep.max_train_rows, cfg.seed)
        if reuse is not None and _same_parts(reuse[0], {"train": train, "val": val, "test": test}):
            proba = reuse[1]
            log.info("fold %d is the patient split itself: reusing its model", k)
        else:
            net, _ = train_net(
                cfg, model_name, n_classes, train, val, root / f"fold{k}", device, desc=f"fold{k}"
            )
            proba = predict_proba(net, signals(test), cfg.deep.eval_batch_size, device)
        scores = classification_metrics(labels(test), proba)
        log.info("fold %d: balanced accuracy %.3f", k, scores["balanced_accuracy"])
        per_fold.append(scores)
    out: dict[str, Any] = {"folds": len(per_fold)}
    for metric in CV_METRICS:
        values = np.array([s[metric] for s in per_fold], dtype=np.float64)
        out[f"{metric}_mean"] = float(np.nanmean(values))
        out[f"{metric}_std"] = float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0
    out["balanced_accuracy_folds"] = [float(s["balanced_accuracy"]) for s in per_fold]
    return out


def train_deep(cfg: Config, task: str, scheme: str, model_name: str) -> dict[str, Any]:
    """Train, evaluate, log and (for the transformer) explain one deep model.

    Args:
        cfg: configuration (``deep`` section, with ``deep.per_task[task]`` applied).
        task: ``ptb`` or ``mitbih``.
        scheme: ``beat`` or ``patient``.
        model_name: a key of ``deep.archs`` (lstm, bilstm, cnn, rescnn, transformer).

    Returns:
        The metrics record written to ``outputs/metrics/{task}/{scheme}/{model}.json`` plus
        ``model_uri`` and ``mlflow_run_id``.

    Raises:
        DataError: the beat table or split is missing or stale.
        ValueError: unknown model name.
    """
    import mlflow
    import torch

    from ecgops.data.splits import load_split
    from ecgops.evaluation.results import save_evaluation
    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.tracking import start_run
    from ecgops.training.engine import TorchBeatPredictor, predict_proba, select_device

    cfg = task_config(cfg, task)
    if model_name not in cfg.deep.archs:
        raise ValueError(
            f"unknown deep model {model_name!r}; expected one of {sorted(cfg.deep.archs)}"
        )
    parts = load_split(cfg, task, scheme)
    parts["train"] = stratified_subsample(parts["train"], cfg.deep.max_train_rows, cfg.seed)
    class_names = cfg.class_names(task)
    n_classes = len(class_names)
    device = select_device(num_threads=cfg.deep.num_threads)
    x_va, y_va = signals(parts["val"]), labels(parts["val"])
    x_te, y_te = signals(parts["test"]), labels(parts["test"])
    ckpt = checkpoint_dir(cfg, task, scheme, model_name)
    params = run_params(cfg, model_name)
    params["n_train"] = len(parts["train"])
    tags = {"family": "deep", "model": model_name, "device": device.type}

    with start_run(
        cfg, task, f"{model_name}-{scheme}", scheme=scheme, params=params, tags=tags
    ) as run:
        net, result = train_net(
            cfg, model_name, n_classes, parts["train"], parts["val"], ckpt / "main", device
        )
        n_parameters = sum(p.numel() for p in net.parameters())
        proba_val = predict_proba(net, x_va, cfg.deep.eval_batch_size, device)
        started = time.perf_counter()
        proba_test = predict_proba(net, x_te, cfg.deep.eval_batch_size, device)
        predict_seconds = time.perf_counter() - started

        cv = None
        if task == "ptb" and scheme == "patient" and cfg.deep.cv:
            cv = cross_validate(cfg, task, model_name, device, reuse=(parts, proba_test))

        timing = {
            "fit_seconds": result.seconds,
            "train_beats_per_s": result.train_beats_per_s,
            "predict_seconds": predict_seconds,
            "predict_beats_per_s": len(x_te) / max(predict_seconds, 1e-9),
        }
        extra = {
            "model": {
                "arch": model_name,
                "params": cfg.deep.archs[model_name],
                "n_parameters": n_parameters,
            },
            "training": {
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_balanced_accuracy": result.best_score,
                "stopped_early": result.stopped_early,
                "resumed_from_epoch": result.resumed_from,
                "device": device.type,
                "threads": torch.get_num_threads(),
                "imbalance": cfg.deep.imbalance,
            },
        }
        mlflow.log_metric("n_parameters", n_parameters)
        mlflow.log_dict({"history": result.history}, "history.json")
        record = save_evaluation(
            cfg,
            task=task,
            scheme=scheme,
            name=model_name,
            family="deep",
            y_test=y_te,
            proba_test=proba_test,
            y_val=y_va,
            proba_val=proba_val,
            timing=timing,
            n={k: len(v) for k, v in parts.items()},
            cv=cv,
            extra=extra,
        )
        predictor = TorchBeatPredictor(
            model_name,
            cfg.deep.archs[model_name],
            n_classes,
            net.state_dict(),
            batch_size=cfg.deep.eval_batch_size,
        )
        info = log_beat_model(predictor, task, class_names, example=x_te[:3])
        if model_name == "transformer":
            from ecgops.evaluation.attention import save_attention_maps

            record["attention"] = save_attention_maps(
                cfg,
                task=task,
                scheme=scheme,
                model=net,
                x_test=x_te,
                y_test=y_te,
                proba_test=proba_test,
                name=model_name,
                device=device,
            )
        record["model_uri"] = info.model_uri
        record["mlflow_run_id"] = run.info.run_id
    log.info(
        "%s/%s/%s: test balanced accuracy %.3f",
        task,
        scheme,
        model_name,
        record["test"]["balanced_accuracy"],
    )
    return record


def _same_parts(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    """Whether two train/val/test cuts hold the same beats (keys and labels)."""
    keys = ["record", "beat", "label"]
    for part in ("train", "val", "test"):
        if len(a[part]) != len(b[part]):
            return False
        if not a[part][keys].reset_index(drop=True).equals(b[part][keys].reset_index(drop=True)):
            return False
    return True
