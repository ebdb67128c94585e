"""Pretraining the transfer encoder on MIT-BIH: supervised (5 classes) or contrastive (no labels).

``pretrain(cfg, method, scheme)`` trains on the training part of the chosen MIT-BIH split, logs
the loss curve and a per-epoch linear probe (evidence that the representation learns) to an
MLflow run ``pretrain-{method}-{scheme}`` in experiment ``ecgops-mitbih``, writes the encoder to
``models/encoders/{method}-{scheme}.pt`` (atomically; also an MLflow artifact) and the final
probe's evaluation as ``outputs/metrics/mitbih/{scheme}/probe-{method}.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecgops.config import Config

log = logging.getLogger(__name__)

TASK = "mitbih"
METHODS = ("supervised", "contrastive")


def encoder_path(cfg: Config, method: str, scheme: str) -> Path:
    """Where the encoder of a pretraining lives: ``models/encoders/{method}-{scheme}.pt``."""
    return cfg.path("models") / "encoders" / f"{method}-{scheme}.pt"


def limit_rows(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``n`` rows, stratified by label (all rows, in order, when n is None).

    Args:
        x: beats (only its length is used).
        y: labels.
        n: row budget or None.
        seed: random state.

    Returns:
        Sorted row indices.
    """
    if n is None or len(x) <= n:
        return np.arange(len(x))
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(x))
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=y, random_state=seed)
    except ValueError:  # a class too rare to stratify
        keep = np.random.default_rng(seed).choice(idx, size=n, replace=False)
    return np.sort(keep)


class ProbeData:
    """Beats and labels that the per-epoch linear probe embeds (capped at ``probe_rows``)."""

    def __init__(self, cfg: Config, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.parts = {}
        for name, (x, y) in parts.items():
            idx = limit_rows(x, y, cfg.transfer.probe_rows, cfg.seed)
            self.parts[name] = (x[idx], y[idx])
        self.class_weight = cfg.transfer.probe_class_weight
        self.seed = cfg.seed
        self.batch_size = cfg.transfer.batch_size

    def scores(self, encoder, n_classes: int, device=None) -> dict[str, float]:
        """Fit the probe on the train embeddings; accuracy and balanced accuracy elsewhere."""
        from ecgops.evaluation.embeddings import embed, linear_probe, probe_proba
        from ecgops.evaluation.metrics import classification_metrics

        emb = {k: embed(encoder, x, self.batch_size, device) for k, (x, _) in self.parts.items()}
        probe = linear_probe(emb["train"], self.parts["train"][1], self.class_weight, self.seed)
        out = {}
        for part in ("val", "test"):
            if part not in emb or not len(emb[part]):
                continue
            m = classification_metrics(
                self.parts[part][1], probe_proba(probe, emb[part], n_classes)
            )
            out[f"probe_{part}_accuracy"] = m["accuracy"]
            out[f"probe_{part}_balanced_accuracy"] = m["balanced_accuracy"]
        return out


def pretrain(cfg: Config, method: str, scheme: str) -> dict[str, Any]:
    """Pretrain the encoder on MIT-BIH and save it.

    Args:
        cfg: configuration (``transfer`` section; ``deep.imbalance`` for the supervised loss).
        method: ``supervised`` (encoder + linear head on the 5 classes) or ``contrastive``
            (SimCLR NT-Xent on two augmented views; labels unused except by the probe).
        scheme: ``beat`` or ``patient`` (MIT-BIH DS1 trains, DS2 tests).

    Returns:
        Summary: ``run_id``, ``method``, ``scheme``, ``encoder_path``, ``encoder_sha256``,
        ``probe`` (test/val accuracy and balanced accuracy of the final linear probe),
        ``best_epoch``, ``epochs_run``, ``seconds``, ``seconds_per_epoch``,
        ``train_beats_per_s``, ``n_train``.

    Raises:
        ValueError: unknown method.
        DataError: missing MIT-BIH table or split.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}; expected one of {METHODS}")
    import mlflow

    from ecgops.data.splits import load_split
    from ecgops.evaluation.embeddings import embed, embedding_figure, linear_probe, probe_proba
    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.evaluation.results import save_evaluation
    from ecgops.models.encoder import Classifier, build_encoder, build_projection, save_encoder
    from ecgops.schema import labels, signals
    from ecgops.tracking import start_run
    from ecgops.training.engine import fit, predict_proba, select_device, set_seed

    tc = cfg.transfer
    parts = load_split(cfg, TASK, scheme)
    data = {k: (signals(df), labels(df)) for k, df in parts.items()}
    keep = limit_rows(*data["train"], tc.max_train_rows, cfg.seed)
    x_tr, y_tr = data["train"][0][keep], data["train"][1][keep]
    (x_va, y_va), (x_te, y_te) = data["val"], data["test"]
    n_classes = len(cfg.class_names(TASK))
    probe_data = ProbeData(cfg, {"train": (x_tr, y_tr), "val": data["val"], "test": data["test"]})

    set_seed(cfg.seed)
    device = select_device(num_threads=cfg.deep.num_threads)
    encoder = build_encoder(cfg)
    name = f"probe-{method}"
    params = {
        "method": method,
        "transfer": tc.model_dump(mode="json"),
        "imbalance": cfg.deep.imbalance,
        "n_train": len(x_tr),
        "device": str(device),
    }
    tags = {"stage": "pretrain", "family": "transfer", "pretrain_method": method}
    with start_run(cfg, TASK, f"pretrain-{method}-{scheme}", scheme, params, tags) as run:
        embedding_figure(
            cfg,
            encoder,
            x_te,
            y_te,
            task=TASK,
            scheme=scheme,
            name=name,
            stage="init",
            device=device,
        )

        init_probe = {
            f"init_{k}": v for k, v in probe_data.scores(encoder, n_classes, device).items()
        }
        mlflow.log_metrics(init_probe)  # the untrained encoder's probe: the baseline to beat

        def on_epoch(epoch: int, metrics: dict) -> None:
            metrics.update(probe_data.scores(encoder, n_classes, device))
            loggable = {k: float(v) for k, v in metrics.items() if _is_number(v)}
            mlflow.log_metrics(loggable, step=epoch)
            log.info("pretrain %s epoch %d: %s", method, epoch, loggable)

        head_metrics: dict[str, float] = {}
        if method == "contrastive":
            from ecgops.training.augment import Augmenter
            from ecgops.training.contrastive import ContrastiveModel, train_contrastive

            model = ContrastiveModel(encoder, build_projection(cfg))
            res = train_contrastive(
                model,
                x_tr,
                probe_data.parts["val"][0],  # early stopping on the (capped) val beats
                Augmenter(tc.augment),
                epochs=tc.pretrain_epochs,
                patience=tc.patience,
                lr=tc.lr,
                weight_decay=tc.weight_decay,
                batch_size=tc.batch_size,
                temperature=tc.temperature,
                seed=cfg.seed,
                device=device,
                on_epoch=on_epoch,
            )
            best_epoch, seconds, bps = res.best_epoch, res.seconds, res.train_beats_per_s
            history = res.history
        else:
            model = Classifier(encoder, n_classes)
            res = fit(
                model,
                (x_tr, y_tr),
                (x_va, y_va),
                epochs=tc.pretrain_epochs,
                patience=tc.patience,
                lr=tc.lr,
                weight_decay=tc.weight_decay,
                batch_size=tc.batch_size,
                imbalance=cfg.deep.imbalance,
                seed=cfg.seed,
                n_classes=n_classes,
                device=device,
                log_mlflow=False,
                on_epoch=on_epoch,
                desc=f"pretrain-{method}-{scheme}",
            )
            best_epoch, seconds, bps = res.best_epoch, res.seconds, res.train_beats_per_s
            history = res.history
            head = classification_metrics(y_te, predict_proba(model, x_te, tc.batch_size, device))
            head_metrics = {f"head_test_{k}": v for k, v in head.items()}
            mlflow.log_metrics({k: v for k, v in head_metrics.items() if _is_number(v)})

        # the final probe: fitted on (capped) training embeddings, scored on the full val/test
        encoder.eval()
        t0 = time.perf_counter()
        tr_x, tr_y = probe_data.parts["train"]
        emb_tr = embed(encoder, tr_x, tc.batch_size, device)
        probe = linear_probe(emb_tr, tr_y, tc.probe_class_weight, cfg.seed)
        probe_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        emb_te = embed(encoder, x_te, tc.batch_size, device)
        proba_te = probe_proba(probe, emb_te, n_classes)
        predict_bps = len(x_te) / max(time.perf_counter() - t0, 1e-9)
        proba_va = probe_proba(probe, embed(encoder, x_va, tc.batch_size, device), n_classes)
        # both probe weightings, for the record: plain accuracy favours the majority class (N)
        probes = {}
        for weighting in ("balanced", "none"):
            p = probe if weighting == tc.probe_class_weight else None
            p = p or linear_probe(emb_tr, tr_y, weighting, cfg.seed)
            m = classification_metrics(y_te, probe_proba(p, emb_te, n_classes))
            probes[weighting] = {k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}

        path = encoder_path(cfg, method, scheme)
        meta = {
            "method": method,
            "scheme": scheme,
            "run_id": run.info.run_id,
            "best_epoch": int(best_epoch),
            "profile": cfg.profile,
        }
        sha = save_encoder(encoder, path, meta)
        mlflow.log_artifact(str(path), artifact_path="encoder")
        mlflow.set_tags({"encoder_path": str(path), "encoder_sha256": sha})

        epochs_run = len(history)
        timing = {
            "fit_seconds": float(seconds),
            "seconds_per_epoch": float(seconds) / max(epochs_run, 1),
            "train_beats_per_s": float(bps),
            "probe_fit_seconds": probe_seconds,
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
            n={"train": len(x_tr), "probe_train": len(tr_x), "val": len(x_va), "test": len(x_te)},
            extra={
                "pretrain": {
                    "method": method,
                    "encoder_path": str(path),
                    "encoder_sha256": sha,
                    "best_epoch": int(best_epoch),
                    "epochs_run": epochs_run,
                    "device": str(device),
                    "history": [_jsonable(h) for h in history],
                    "probe_test_by_class_weight": probes,
                    **init_probe,
                    **head_metrics,
                }
            },
        )
        embedding_figure(
            cfg,
            encoder,
            x_te,
            y_te,
            task=TASK,
            scheme=scheme,
            name=name,
            stage="pretrained",
            device=device,
        )
    return {
        "run_id": run.info.run_id,
        "method": method,
        "scheme": scheme,
        "encoder_path": str(path),
        "encoder_sha256": sha,
        "probe": {
            "test_accuracy": record["test"]["accuracy"],
            "test_balanced_accuracy": record["test"]["balanced_accuracy"],
            "val_accuracy": record.get("val", {}).get("accuracy", float("nan")),
            "val_balanced_accuracy": record.get("val", {}).get("balanced_accuracy", float("nan")),
            "test_by_class_weight": probes,
            **init_probe,
        },
        "best_epoch": int(best_epoch),
        "epochs_run": epochs_run,
        "seconds": float(seconds),
        "seconds_per_epoch": timing["seconds_per_epoch"],
        "train_beats_per_s": float(bps),
        "n_train": len(x_tr),
        "device": str(device),
        **head_metrics,
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.floating | np.integer) and np.isfinite(float(v))


def _jsonable(d: dict) -> dict:
    """Numbers as floats (NaN/inf as None), strings kept, arrays dropped."""
    out: dict = {}
    for k, v in d.items():
        if _is_number(v):
            out[k] = float(v)
        elif isinstance(v, float | np.floating):
            out[k] = None
        elif isinstance(v, str | int | bool | type(None)):
            out[k] = v
    return out
