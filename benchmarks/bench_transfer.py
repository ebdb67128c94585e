"""Benchmark: pretraining time per epoch of the transfer encoder (CPU, and CUDA when present).

Times one epoch of contrastive pretraining (two augmented views, NT-Xent) and one epoch of
supervised pretraining (the engine's ``fit``) on ``--n`` beats, plus inference, and extrapolates
to the MIT-BIH training part that the active profile pretrains on. Uses the real MIT-BIH beats
when ``data/processed/mitbih.parquet`` exists, else synthetic beats of the same shape.

    .venv/bin/python benchmarks/bench_transfer.py --n 4096 [--threads 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def beats(cfg, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` MIT-BIH training beats when the table exists, else synthetic ones."""
    from ecgops.data.splits import load_split
    from ecgops.errors import DataError
    from ecgops.schema import labels, signals

    try:
        train = load_split(cfg, "mitbih", "beat")["train"]
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(train), size=min(n, len(train)), replace=False)
        return signals(train)[idx], labels(train)[idx], f"mitbih beat-split train ({len(train)})"
    except (DataError, OSError, ImportError):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0.1, 0.9, size=(n, 187)).astype(np.float32)
        for i, cut in enumerate(rng.integers(90, 187, size=n)):
            x[i, cut:] = 0.0
        return x, rng.integers(0, 5, size=n), "synthetic"


def bench_device(cfg, device_name: str, x: np.ndarray, y: np.ndarray) -> dict:
    """Seconds for one contrastive epoch, one supervised epoch and inference on ``x``."""
    import torch

    from ecgops.evaluation.embeddings import embed
    from ecgops.models.encoder import Classifier, build_encoder, build_projection
    from ecgops.training.augment import Augmenter
    from ecgops.training.contrastive import ContrastiveModel, train_contrastive
    from ecgops.training.engine import FitOptions, LoopConfig, fit, set_seed

    tc = cfg.transfer
    device = torch.device(device_name)
    n_val = max(len(x) // 8, 2)
    x_tr, x_va, y_tr, y_va = x[n_val:], x[:n_val], y[n_val:], y[:n_val]
    out = {"device": device_name, "n_train": len(x_tr), "batch_size": tc.batch_size}

    # warm-up (lazy imports, kernel selection) so the timings below are steady state
    set_seed(cfg.seed)
    warm = ContrastiveModel(build_encoder(cfg), build_projection(cfg))
    train_contrastive(
        warm,
        x_tr[: 2 * tc.batch_size],
        x_va[:64],
        Augmenter(tc.augment),
        epochs=1,
        patience=1,
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        batch_size=tc.batch_size,
        temperature=tc.temperature,
        seed=cfg.seed,
        device=device,
    )

    set_seed(cfg.seed)
    model = ContrastiveModel(build_encoder(cfg), build_projection(cfg))
    res = train_contrastive(
        model,
        x_tr,
        x_va,
        Augmenter(tc.augment),
        epochs=1,
        patience=1,
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        batch_size=tc.batch_size,
        temperature=tc.temperature,
        seed=cfg.seed,
        device=device,
    )
    out["contrastive_epoch_s"] = res.history[0]["seconds"]
    out["contrastive_train_beats_per_s"] = res.train_beats_per_s

    set_seed(cfg.seed)
    clf = Classifier(build_encoder(cfg), 5)
    t0 = time.perf_counter()
    loop = LoopConfig(
        epochs=1,
        patience=1,
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        batch_size=tc.batch_size,
        imbalance="none",
        seed=cfg.seed,
    )
    options = FitOptions(device=device, log_mlflow=False, desc="bench")
    fres = fit(clf, (x_tr, y_tr), (x_va, y_va), loop, n_classes=5, options=options)
    out["supervised_epoch_s"] = time.perf_counter() - t0
    out["supervised_train_beats_per_s"] = fres.train_beats_per_s

    t0 = time.perf_counter()
    embed(model.encoder, x, batch_size=1024, device=device)
    out["embed_beats_per_s"] = len(x) / (time.perf_counter() - t0)
    return out


def main() -> None:
    """Run the benchmark and print (and optionally write) a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="beats to time on")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--profile", default=None, help="params profile (default: params.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args()

    import torch

    from ecgops.config import load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(profile=args.profile)
    x, y, source = beats(cfg, args.n, cfg.seed)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "data": source,
        "encoder": dict(cfg.transfer.encoder),
        "results": [bench_device(cfg, d, x, y) for d in devices],
    }
    cap = cfg.transfer.max_train_rows
    full_train = _mitbih_train_rows(cfg)
    for r in report["results"]:
        for key in ("contrastive", "supervised"):
            bps = r[f"{key}_train_beats_per_s"]
            for label, rows in (("profile_cap", cap), ("full_train", full_train)):
                if rows and bps:
                    r[f"{key}_epoch_s_at_{label}_{rows}"] = rows / bps
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.out:
        from ecgops.io import write_text

        write_text(text + "\n", args.out)


def _mitbih_train_rows(cfg) -> int | None:
    try:
        from ecgops.data.splits import load_assignments

        return int((load_assignments(cfg, "mitbih")["beat"] == "train").sum())
    except Exception:  # noqa: BLE001 - no data yet: nothing to extrapolate to
        return None


if __name__ == "__main__":
    main()
