"""Fine-tuning a pretrained encoder on PTB (healthy vs MI) with strategies A, B and C.

- ``A``: the encoder is frozen (weights and batch-norm statistics); only a new linear head trains.
- ``B``: encoder and new head train together.
- ``C``: head first with the encoder frozen for ``phase_one_fraction`` of the epochs, then
  everything with the learning rate times ``finetune_lr_ratio``.
- ``scratch``: the same architecture from random initialisation, trained like ``B`` (baseline).

Each fine-tune is one MLflow run in ``ecgops-ptb`` tagged with its lineage (the pretraining
run id, the encoder file and its sha256); its evaluation is ``transfer-{encoder}-{strategy}``
(``transfer-scratch``) and its model is logged as a pyfunc. On the patient scheme the same
recipe is also run on every grouped fold (mean and std of the test balanced accuracy).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecgops.config import Config
from ecgops.models.encoder import Classifier, Encoder

log = logging.getLogger(__name__)

TASK = "ptb"
ENCODER_KINDS = ("supervised", "contrastive", "scratch")
STRATEGIES = ("A", "B", "C")


@dataclass(frozen=True)
class Phase:
    """One stage of a fine-tuning recipe."""

    name: str
    train_encoder: bool
    epochs: int
    lr: float


def strategy_phases(
    strategy: str, epochs: int, lr: float, phase_one_fraction: float, lr_ratio: float
) -> list[Phase]:
    """The phases of a strategy.

    Args:
        strategy: ``A``, ``B`` or ``C``.
        epochs: total epoch budget.
        lr: base learning rate.
        phase_one_fraction: C's share of epochs with the encoder frozen.
        lr_ratio: C's phase-two learning rate factor.

    Returns:
        The phases, in order.
    """
    if strategy == "A":
        return [Phase("head", False, epochs, lr)]
    if strategy == "B":
        return [Phase("all", True, epochs, lr)]
    if strategy == "C":
        first = min(max(1, round(epochs * phase_one_fraction)), max(epochs - 1, 1))
        return [
            Phase("head", False, first, lr),
            Phase("all", True, max(epochs - first, 1), lr * lr_ratio),
        ]
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def run_phases(
    model: Classifier,
    phases: list[Phase],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    patience: int,
    weight_decay: float,
    batch_size: int,
    imbalance: str,
    seed: int,
    n_classes: int,
    device: torch.device | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    on_phase_end: Callable[[Phase, Classifier], None] | None = None,
) -> list[Any]:
    """Train ``model`` through ``phases`` with the engine's ``fit`` (best-val weights kept).

    Args:
        model: encoder + head.
        phases: from :func:`strategy_phases`.
        train, val: (beats, labels) arrays.
        patience, weight_decay, batch_size, imbalance, seed, n_classes: passed to ``fit``.
        device: where to train.
        on_epoch: called as ``on_epoch(global_epoch, metrics)``; ``metrics['phase']`` names the
            phase (epochs count on across phases).
        on_phase_end: called with each finished phase and the model.

    Returns:
        The engine's ``FitResult`` of every phase.
    """
    from ecgops.training.engine import fit

    results, offset = [], 0
    for phase in phases:
        model.freeze_encoder(not phase.train_encoder)

        def hook(epoch: int, metrics: dict, _offset: int = offset, _phase: Phase = phase) -> None:
            if on_epoch is not None:
                on_epoch(_offset + epoch, {**metrics, "phase": _phase.name})

        res = fit(
            model,
            train,
            val,
            epochs=phase.epochs,
            patience=patience,
            lr=phase.lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            imbalance=imbalance,
            seed=seed,
            n_classes=n_classes,
            device=device,
            log_mlflow=False,
            on_epoch=hook,
            desc=f"finetune-{phase.name}",
        )
        results.append(res)
        offset += len(res.history)
        if on_phase_end is not None:
            on_phase_end(phase, model)
    model.freeze_encoder(False)
    return results


CLASSIFIER_BUILDER = "ecgops.models.encoder:build_classifier"


def make_predictor(model: Classifier, batch_size: int) -> Any:
    """The registry predictor of a fine-tuned model (rebuilt from its weights on CPU)."""
    from ecgops.models.encoder import encoder_arch
    from ecgops.training.engine import TorchBeatPredictor

    arch_kwargs = {"arch": encoder_arch(model.encoder), **model.encoder.hparams}
    return TorchBeatPredictor(
        CLASSIFIER_BUILDER, arch_kwargs, model.head.out_features, model.state_dict(), batch_size
    )


def result_name(encoder: str, strategy: str | None) -> str:
    """Metrics name of a fine-tune: ``transfer-{encoder}-{strategy}`` or ``transfer-scratch``."""
    return "transfer-scratch" if encoder == "scratch" else f"transfer-{encoder}-{strategy}"


def _check(encoder: str, strategy: str | None) -> str:
    if encoder not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {ENCODER_KINDS}")
    if encoder == "scratch":
        if strategy not in (None, "B"):
            raise ValueError("a scratch baseline trains everything: strategy must be None or 'B'")
        return "B"
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    return strategy


def _initial_encoder(cfg: Config, encoder: str, scheme: str) -> tuple[Encoder, dict[str, str]]:
    """The starting encoder and its lineage tags."""
    from ecgops.models.encoder import build_encoder, file_sha256, load_encoder
    from ecgops.training.pretrain import encoder_path

    if encoder == "scratch":
        return build_encoder(cfg), {"encoder": "scratch"}
    path = encoder_path(cfg, encoder, scheme)
    enc, meta = load_encoder(path)
    return enc, {
        "encoder": encoder,
        "pretrained_run_id": str(meta.get("run_id", "")),
        "encoder_path": str(path),
        "encoder_sha256": file_sha256(path),
        "pretrain_scheme": str(meta.get("scheme", scheme)),
    }


def train_recipe(
    cfg: Config,
    start: Encoder,
    strategy: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    device: torch.device | None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> tuple[Classifier, list[Any]]:
    """A fresh classifier on a copy of ``start`` trained with ``strategy`` (seeded).

    Args:
        cfg: configuration (``transfer`` budget, ``deep.imbalance``).
        start: the starting encoder (left untouched).
        strategy: ``A``, ``B`` or ``C``.
        train, val: (beats, labels).
        device: where to train.
        on_epoch: per-epoch callback (global epoch, metrics).

    Returns:
        The trained classifier and the per-phase fit results.
    """
    from ecgops.training.engine import set_seed

    tc = cfg.transfer
    set_seed(cfg.seed)
    model = Classifier(copy.deepcopy(start), len(cfg.class_names(TASK)))
    phases = strategy_phases(
        strategy, tc.finetune_epochs, tc.lr, tc.phase_one_fraction, tc.finetune_lr_ratio
    )
    results = run_phases(
        model,
        phases,
        train,
        val,
        patience=tc.patience,
        weight_decay=tc.weight_decay,
        batch_size=tc.finetune_batch_size,
        imbalance=cfg.deep.imbalance,
        seed=cfg.seed,
        n_classes=len(cfg.class_names(TASK)),
        device=device,
        on_epoch=on_epoch,
    )
    return model, results


def finetune(cfg: Config, scheme: str, encoder: str, strategy: str | None = None) -> dict[str, Any]:
    """Fine-tune (or train from scratch) on PTB and write its evaluation and model.

    Args:
        cfg: configuration.
        scheme: ``beat`` or ``patient``; the pretrained encoder of the same MIT-BIH scheme is
            used (``models/encoders/{encoder}-{scheme}.pt``).
        encoder: ``supervised``, ``contrastive`` or ``scratch``.
        strategy: ``A``, ``B`` or ``C`` (None or ``B`` for scratch).

    Returns:
        Summary: ``run_id``, ``name``, ``scheme``, ``encoder``, ``strategy``, lineage,
        ``test`` and ``val`` metrics, ``cv`` (patient scheme), ``seconds``, ``epochs_run``.

    Raises:
        ValueError: unknown encoder/strategy.
        DataError: missing PTB table/split or encoder file.
    """
    strategy_used = _check(encoder, strategy)
    import mlflow

    from ecgops.data.splits import iter_patient_folds, load_split
    from ecgops.evaluation.embeddings import embedding_figure
    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.evaluation.results import save_evaluation
    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.schema import labels, signals
    from ecgops.tracking import start_run
    from ecgops.training.engine import predict_proba, select_device

    tc = cfg.transfer
    name = result_name(encoder, strategy)
    parts = load_split(cfg, TASK, scheme)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
        (signals(parts[p]), labels(parts[p])) for p in ("train", "val", "test")
    )
    start, lineage = _initial_encoder(cfg, encoder, scheme)
    device = select_device(num_threads=cfg.deep.num_threads)
    tags = {"stage": "finetune", "family": "transfer", "strategy": strategy_used, **lineage}
    params = {
        "encoder": encoder,
        "strategy": strategy_used,
        "transfer": tc.model_dump(mode="json"),
        "imbalance": cfg.deep.imbalance,
        "device": str(device),
    }
    with start_run(cfg, TASK, f"{name}-{scheme}", scheme, params, tags) as run:
        stage0 = "init" if encoder == "scratch" else "before-finetune"
        embedding_figure(
            cfg,
            start,
            x_te,
            y_te,
            task=TASK,
            scheme=scheme,
            name=name,
            stage=stage0,
            device=device,
        )

        def on_epoch(epoch: int, metrics: dict) -> None:
            mlflow.log_metrics(
                {k: float(v) for k, v in metrics.items() if _is_number(v)}, step=epoch
            )

        t0 = time.perf_counter()
        model, results = train_recipe(
            cfg, start, strategy_used, (x_tr, y_tr), (x_va, y_va), device, on_epoch
        )
        fit_seconds = time.perf_counter() - t0
        proba_va = predict_proba(model, x_va, tc.batch_size, device)
        t0 = time.perf_counter()
        proba_te = predict_proba(model, x_te, tc.batch_size, device)
        predict_bps = len(x_te) / max(time.perf_counter() - t0, 1e-9)

        cv = None
        folds_detail: list[dict[str, float]] = []
        if scheme == "patient":
            for k, (f_tr, f_va, f_te) in enumerate(iter_patient_folds(cfg, TASK)):
                xf_te = signals(f_te)
                if xf_te.shape == x_te.shape and np.array_equal(xf_te, x_te):
                    # fold 0 is the patient split itself: the model above already scores it
                    m = classification_metrics(y_te, proba_te)
                else:
                    fold_model, _ = train_recipe(
                        cfg,
                        start,
                        strategy_used,
                        (signals(f_tr), labels(f_tr)),
                        (signals(f_va), labels(f_va)),
                        device,
                    )
                    m = classification_metrics(
                        labels(f_te), predict_proba(fold_model, xf_te, tc.batch_size, device)
                    )
                folds_detail.append({"fold": k, **m})
                log.info("%s fold %d: balanced accuracy %.3f", name, k, m["balanced_accuracy"])
            cv = _cv_summary(folds_detail)

        epochs_run = sum(len(r.history) for r in results)
        beats = sum(r.train_beats_per_s * r.seconds for r in results)
        timing = {
            "fit_seconds": fit_seconds,
            "train_beats_per_s": beats / max(sum(r.seconds for r in results), 1e-9),
            "predict_beats_per_s": predict_bps,
        }
        record = save_evaluation(
            cfg,
            task=TASK,
            scheme=scheme,
            name=name,
            family="transfer",
            y_test=y_te,
            proba_test=proba_te,
            y_val=y_va,
            proba_val=proba_va,
            timing=timing,
            n={"train": len(x_tr), "val": len(x_va), "test": len(x_te)},
            cv=cv,
            extra={
                "transfer": {
                    **lineage,
                    "strategy": strategy_used,
                    "phases": [
                        {
                            "best_epoch": r.best_epoch,
                            "epochs_run": len(r.history),
                            "stopped_early": r.stopped_early,
                        }
                        for r in results
                    ],
                    "device": str(device),
                    "cv_folds": folds_detail,
                }
            },
        )
        log_beat_model(
            make_predictor(model.cpu(), tc.batch_size), TASK, cfg.class_names(TASK), x_te[:3]
        )
        embedding_figure(
            cfg,
            model.encoder,
            x_te,
            y_te,
            task=TASK,
            scheme=scheme,
            name=name,
            stage="after-finetune",
            device=torch.device("cpu"),
        )
    return {
        "run_id": run.info.run_id,
        "name": name,
        "scheme": scheme,
        "encoder": encoder,
        "strategy": strategy_used,
        "lineage": lineage,
        "test": record["test"],
        "val": record.get("val", {}),
        "cv": cv,
        "seconds": fit_seconds,
        "epochs_run": epochs_run,
    }


def _cv_summary(folds: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"folds": len(folds)}
    for key in ("balanced_accuracy", "accuracy", "macro_f1", "auroc"):
        vals = np.array([f[key] for f in folds], dtype=float)
        out[f"{key}_mean"] = float(np.nanmean(vals))
        out[f"{key}_std"] = float(np.nanstd(vals))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.floating | np.integer) and np.isfinite(float(v))
