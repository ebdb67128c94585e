"""Pretraining the transfer encoder on MIT-BIH: supervised (5 classes) or contrastive (no labels).

``pretrain(cfg, method, scheme)`` trains on the training part of the chosen MIT-BIH split, logs
the loss curve and a per-epoch linear probe (evidence that the representation learns) to an
MLflow run ``pretrain-{method}-{scheme}`` in experiment ``ecgops-mitbih``, writes the encoder to
``models/encoders/{method}-{scheme}.pt`` (atomically; also an MLflow artifact) and the final
probe's evaluation as ``outputs/metrics/mitbih/{scheme}/probe-{method}.json``. The run follows
the shared template (:class:`~ecgops.training.run.TrainingRun`): split, subsample, fit (here:
pretrain, then fit the probe), evaluate the probe on val/test, write and log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.paths import encoder_file
from ecgops.schema import labels, signals
from ecgops.training.run import TrainingRun

log = logging.getLogger(__name__)

TASK = "mitbih"
SCHEME = "patient"
"""The MIT-BIH split whose training part pretrains the encoders every PTB fine-tune starts from,
whatever the fine-tune's own PTB scheme: the patient scheme (DS1 trains, DS2 stays unseen, so the
encoder's probe is scored on new patients). PTB and MIT-BIH share no patient, so a PTB split needs
no MIT-BIH split of its own; one pretraining per method instead of one per scheme saved 6,400 s
of the `full` profile (the beat-scheme pretrainings, 070aabf)."""
METHODS = ("supervised", "contrastive")


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


@dataclass
class Pretrained:
    """A finished pretraining: the training result, the final probe and its training data."""

    result: Any
    probe: Any
    probe_x: np.ndarray
    probe_y: np.ndarray
    probe_seconds: float
    head_metrics: dict[str, float]


class PretrainRun(TrainingRun):
    """Pretrain the encoder and probe it (the :class:`~ecgops.training.run.TrainingRun` hooks).

    Args:
        cfg: configuration (``transfer`` section; ``deep.imbalance`` for the supervised loss).
        method: ``supervised`` or ``contrastive``.
        scheme: ``beat`` or ``patient``.
    """

    family = "transfer"

    def __init__(self, cfg: Config, method: str, scheme: str) -> None:
        super().__init__(cfg, TASK, scheme)
        self.method = method
        self.n_classes = len(cfg.class_names(TASK))
        self.init_probe: dict[str, float] = {}
        self.test_embedding: np.ndarray | None = None  # the test part's, from predict()
        self.encoder_file = encoder_file(cfg, method, scheme)
        self.encoder_sha = ""

    @property
    def name(self) -> str:
        """``probe-{method}``."""
        return f"probe-{self.method}"

    @property
    def run_name(self) -> str:
        """``pretrain-{method}-{scheme}``."""
        return f"pretrain-{self.method}-{self.scheme}"

    def subsample(self, train: pd.DataFrame) -> pd.DataFrame:
        """At most ``transfer.max_train_rows`` rows, stratified (:func:`limit_rows`)."""
        keep = limit_rows(
            signals(train), labels(train), self.cfg.transfer.max_train_rows, self.cfg.seed
        )
        return train.iloc[keep].reset_index(drop=True)

    def prepare(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> None:
        """Probe data, seed, device and the fresh encoder."""
        from ecgops.models.encoder import build_encoder
        from ecgops.training.engine import select_device, set_seed

        cfg = self.cfg
        self.test = (signals(parts["test"]), labels(parts["test"]))
        self.probe_data = ProbeData(
            cfg,
            {
                "train": (signals(train), labels(train)),
                "val": (signals(parts["val"]), labels(parts["val"])),
                "test": self.test,
            },
        )
        set_seed(cfg.seed)
        self.device = select_device(num_threads=cfg.deep.num_threads)
        self.encoder = build_encoder(cfg)

    def params(self, train: pd.DataFrame) -> dict[str, Any]:
        """Method, the transfer section, the supervised loss's imbalance, rows and device."""
        return {
            "method": self.method,
            "transfer": self.cfg.transfer.model_dump(mode="json"),
            "imbalance": self.cfg.deep.imbalance,
            "n_train": len(train),
            "device": str(self.device),
        }

    def tags(self) -> dict[str, str]:
        """Stage, family and method."""
        return {"stage": "pretrain", "family": self.family, "pretrain_method": self.method}

    def cv_enabled(self) -> bool:
        """Never: the encoder is judged by its probe on the fixed MIT-BIH split."""
        return False

    def start(self, parts: dict[str, pd.DataFrame]) -> None:
        """The untrained encoder's embedding figure and probe (the baseline to beat)."""
        import mlflow

        self._figure("init")
        scores = self.probe_data.scores(self.encoder, self.n_classes, self.device)
        self.init_probe = {f"init_{k}": v for k, v in scores.items()}
        mlflow.log_metrics(self.init_probe)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, fold: int | None) -> Pretrained:
        """Pretrain the encoder (per-epoch probe logged), then fit the final linear probe."""
        from ecgops.evaluation.embeddings import embed, linear_probe

        result, head_metrics = self._pretrain(train, val)
        # the final probe: fitted on (capped) training embeddings, scored on the full val/test
        tc = self.cfg.transfer
        self.encoder.eval()
        t0 = time.perf_counter()
        tr_x, tr_y = self.probe_data.parts["train"]
        emb_tr = embed(self.encoder, tr_x, tc.batch_size, self.device)
        probe = linear_probe(emb_tr, tr_y, tc.probe_class_weight, self.cfg.seed)
        return Pretrained(result, probe, emb_tr, tr_y, time.perf_counter() - t0, head_metrics)

    def _pretrain(self, train: pd.DataFrame, val: pd.DataFrame) -> tuple[Any, dict[str, float]]:
        import mlflow

        from ecgops.evaluation.metrics import classification_metrics
        from ecgops.models.encoder import Classifier, build_projection
        from ecgops.training.engine import FitOptions, LoopConfig, fit, predict_proba

        cfg, tc, method, device = self.cfg, self.cfg.transfer, self.method, self.device

        def on_epoch(epoch: int, metrics: dict) -> None:
            metrics.update(self.probe_data.scores(self.encoder, self.n_classes, device))
            loggable = {k: float(v) for k, v in metrics.items() if _is_number(v)}
            mlflow.log_metrics(loggable, step=epoch)
            log.info("pretrain %s epoch %d: %s", method, epoch, loggable)

        if method == "contrastive":
            from ecgops.training.augment import Augmenter
            from ecgops.training.contrastive import ContrastiveModel, train_contrastive

            model = ContrastiveModel(self.encoder, build_projection(cfg))
            res = train_contrastive(
                model,
                signals(train),
                self.probe_data.parts["val"][0],  # early stopping on the (capped) val beats
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
            return res, {}
        model = Classifier(self.encoder, self.n_classes)
        loop = LoopConfig(
            epochs=tc.pretrain_epochs,
            patience=tc.patience,
            lr=tc.lr,
            weight_decay=tc.weight_decay,
            batch_size=tc.batch_size,
            imbalance=cfg.deep.imbalance,
            seed=cfg.seed,
        )
        options = FitOptions(
            device=device,
            log_mlflow=False,
            on_epoch=on_epoch,
            desc=f"pretrain-{method}-{self.scheme}",
        )
        x_te, y_te = self.test
        res = fit(
            model,
            (signals(train), labels(train)),
            (signals(val), labels(val)),
            loop,
            n_classes=self.n_classes,
            options=options,
        )
        head = classification_metrics(y_te, predict_proba(model, x_te, tc.batch_size, device))
        head_metrics = {f"head_test_{k}": v for k, v in head.items()}
        mlflow.log_metrics({k: v for k, v in head_metrics.items() if _is_number(v)})
        return res, head_metrics

    def predict(self, fitted: Pretrained, beats: pd.DataFrame, timed: bool) -> np.ndarray:
        """The probe's probabilities on the encoder's embeddings."""
        from ecgops.evaluation.embeddings import embed, probe_proba

        emb = embed(self.encoder, signals(beats), self.cfg.transfer.batch_size, self.device)
        if timed:  # the test part: extra() scores both probe weightings on the same embeddings
            self.test_embedding = emb
        return probe_proba(fitted.probe, emb, self.n_classes)

    def fit_timing(self, fitted: Pretrained, seconds: float, n_train: int) -> dict[str, float]:
        """Pretraining time and speed, and the probe's fit time."""
        res = fitted.result
        return {
            "fit_seconds": float(res.seconds),
            "seconds_per_epoch": float(res.seconds) / max(len(res.history), 1),
            "train_beats_per_s": float(res.train_beats_per_s),
            "probe_fit_seconds": fitted.probe_seconds,
        }

    def counts(self, parts: dict[str, pd.DataFrame], train: pd.DataFrame) -> dict[str, int]:
        """Pretraining rows, the probe's training rows, val and test."""
        return {
            "train": len(train),
            "probe_train": len(self.probe_data.parts["train"][0]),
            "val": len(parts["val"]),
            "test": len(parts["test"]),
        }

    def extra(self, fitted: Pretrained) -> dict[str, Any]:
        """Save the encoder (file and MLflow artifact) and record it with both probe weightings."""
        import mlflow

        from ecgops.evaluation.embeddings import embed, linear_probe, probe_proba
        from ecgops.evaluation.metrics import classification_metrics
        from ecgops.models.encoder import save_encoder

        tc, res = self.cfg.transfer, fitted.result
        x_te, y_te = self.test
        emb_te = self.test_embedding
        if emb_te is None or len(emb_te) != len(x_te):
            emb_te = embed(self.encoder, x_te, tc.batch_size, self.device)
        # both probe weightings, for the record: plain accuracy favours the majority class (N)
        probes = {}
        for weighting in ("balanced", "none"):
            p = fitted.probe if weighting == tc.probe_class_weight else None
            p = p or linear_probe(fitted.probe_x, fitted.probe_y, weighting, self.cfg.seed)
            m = classification_metrics(y_te, probe_proba(p, emb_te, self.n_classes))
            probes[weighting] = {k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
        self.probes = probes
        path = self.encoder_file
        meta = {
            "method": self.method,
            "scheme": self.scheme,
            "run_id": mlflow.active_run().info.run_id,
            "best_epoch": int(res.best_epoch),
            "profile": self.cfg.profile,
        }
        self.encoder_sha = save_encoder(self.encoder, path, meta)
        mlflow.log_artifact(str(path), artifact_path="encoder")
        mlflow.set_tags({"encoder_path": str(path), "encoder_sha256": self.encoder_sha})
        return {
            "pretrain": {
                "method": self.method,
                "encoder_path": str(path),
                "encoder_sha256": self.encoder_sha,
                "best_epoch": int(res.best_epoch),
                "epochs_run": len(res.history),
                "device": str(self.device),
                "history": [_jsonable(h) for h in res.history],
                "probe_test_by_class_weight": probes,
                **self.init_probe,
                **fitted.head_metrics,
            }
        }

    def finish(self, fitted: Any, record: dict[str, Any], parts: dict[str, pd.DataFrame]) -> None:
        """The pretrained encoder's embedding figure."""
        self._figure("pretrained")

    def _figure(self, stage: str) -> None:
        from ecgops.evaluation.embeddings import embedding_figure

        x_te, y_te = self.test
        embedding_figure(
            self.cfg,
            self.encoder,
            x_te,
            y_te,
            task=TASK,
            scheme=self.scheme,
            name=self.name,
            stage=stage,
            device=self.device,
        )

    def summary(self, record: dict[str, Any], run: Any) -> dict[str, Any]:
        """The pretraining's summary (see :func:`pretrain`)."""
        pre, timing = record["pretrain"], record["timing"]
        head_metrics = {k: v for k, v in pre.items() if k.startswith("head_test_")}
        return {
            "run_id": run.info.run_id,
            "method": self.method,
            "scheme": self.scheme,
            "encoder_path": str(self.encoder_file),
            "encoder_sha256": self.encoder_sha,
            "probe": {
                "test_accuracy": record["test"]["accuracy"],
                "test_balanced_accuracy": record["test"]["balanced_accuracy"],
                "val_accuracy": record.get("val", {}).get("accuracy", float("nan")),
                "val_balanced_accuracy": record.get("val", {}).get(
                    "balanced_accuracy", float("nan")
                ),
                "test_by_class_weight": self.probes,
                **self.init_probe,
            },
            "best_epoch": pre["best_epoch"],
            "epochs_run": pre["epochs_run"],
            "seconds": timing["fit_seconds"],
            "seconds_per_epoch": timing["seconds_per_epoch"],
            "train_beats_per_s": timing["train_beats_per_s"],
            "n_train": record["n"]["train"],
            "device": str(self.device),
            **head_metrics,
        }


def pretrain(cfg: Config, method: str, scheme: str = SCHEME) -> dict[str, Any]:
    """Pretrain the encoder on MIT-BIH and save it.

    Args:
        cfg: configuration (``transfer`` section; ``deep.imbalance`` for the supervised loss).
        method: ``supervised`` (encoder + linear head on the 5 classes) or ``contrastive``
            (SimCLR NT-Xent on two augmented views; labels unused except by the probe).
        scheme: ``patient`` (MIT-BIH DS1 trains, DS2 tests; the encoder the fine-tunes read,
            :data:`SCHEME`) or ``beat``.

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
    return PretrainRun(cfg, method, scheme).run()


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
