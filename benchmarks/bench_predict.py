#!/usr/bin/env python
"""Batch prediction throughput (beats/s, CPU) of registered classical and deep models.

Targets (issue 19): at least 20,000 beats/s for the classical champion and 5,000 for the deep
one. Runs on a fresh clone: nothing of the project's registry is read or written.

1. A scratch MLflow store (SQLite and artifacts in a temporary folder, no server).
2. Six models trained and logged the way the trainers log them: LightGBM pipelines on the
   raw beats (``lgbm``) and on features (``lgbm-features``: the feature step every
   ``*-features`` model computes at prediction time) and a random forest on raw beats (``rf``,
   the forest of the MIT-BIH context champion ``rf-raw+rr``, without its 10 RR inputs)
   (``build_pipeline``, ``classical.<model>`` of the profile, ``classical.per_task`` applied),
   and a CNN, a residual CNN (the kind of three of the four champions) and a transformer
   (``deep.archs.<net>`` fitted by the engine, ``ecgops.training.deep.fit_net``, logged as a
   ``TorchBeatPredictor`` with ``deep.eval_batch_size``), each with its calibrator fitted on
   validation beats, in a ``start_run`` run through ``log_beat_model``. All are registered
   under the task's model name (the classical ones with the ``champion`` alias). Small
   training budgets (``--train-rows``, ``--cnn-epochs`` for the nets): prediction cost does not
   depend on how well a model learned, except through the trees' sizes, so the pipelines keep
   the profile's tree counts (``--profile full`` by default, the profile the report's
   champions are trained with: LightGBM 400 rounds, one tree per class each).
3. For each model, loaded once with ``load_model`` (its load time reported apart):

   - **in-process**: ``LoadedModel.predict_proba`` on ``--rows`` beats (after one warm-up
     chunk); beside it the bare predictor (``predict_proba`` of the unwrapped pipeline or
     net on a float32 array), to show what the pyfunc wrapper and the chunking cost;
   - **CSV end to end**: ``predict_csv`` with the loaded model on a Kaggle-layout CSV of the
     same beats (parsing, checks and the output CSV included, load excluded);
   - the deep model also at other torch thread counts (``--threads``) and prediction batch
     sizes (``--batch-sizes``, the ``deep.eval_batch_size`` the model was logged with).

Beats: ``data/processed/mitbih.parquet`` (else ``ptb.parquet``, else the test fixtures), drawn
with replacement up to ``--rows``. Prints a markdown table and writes
``outputs/benchmarks/predict.json``.

Usage::

    .venv/bin/python benchmarks/bench_predict.py
    .venv/bin/python benchmarks/bench_predict.py --rows 20000 --threads 1 2 --batch-sizes 256 4096
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from bench_deep import machine  # noqa: E402
from bench_engine import draw, load_table  # noqa: E402

from ecgops.config import Config, deep_merge, load_config  # noqa: E402
from ecgops.io import write_json  # noqa: E402
from ecgops.schema import labels, signals  # noqa: E402

TARGETS = {
    "lgbm": 20_000,
    "lgbm-features": 20_000,
    "rf": 20_000,
    "cnn": 5_000,
    "rescnn": 5_000,
    "transformer": 5_000,
}
CSV_BLOCK = 10_000
WARMUP_ROWS = 1_000


def scratch_config(work: Path, profile: str) -> Config:
    """A config whose tracking store and outputs live in ``work`` (SQLite, local artifacts)."""
    uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # the env wins over params.yaml: point it here too
    overrides = {
        "paths": {"outputs": str(work / "outputs"), "models": str(work / "models")},
        "tracking": {"uri": uri, "artifact_root": (work / "artifacts").as_uri()},
    }
    return load_config(root=ROOT, profile=profile, overrides=deep_merge({}, overrides))


def fit_classical(
    cfg: Config, task: str, model: str, train: pd.DataFrame, input: str = "raw"
) -> Any:
    """A classical pipeline (``lgbm``, ``rf``, ...) on raw beats or features, as the classical
    trainer builds it."""
    from ecgops.models.classical import build_pipeline
    from ecgops.training.classical import classical_for_task

    cfg = classical_for_task(cfg, task)
    pipe = build_pipeline(cfg, model, input, len(cfg.class_names(task)))
    return pipe.fit(signals(train), labels(train))


def fit_deep(
    cfg: Config, task: str, arch: str, train: pd.DataFrame, val: pd.DataFrame, work: Path
) -> Any:
    """A net (``cnn``, ``transformer``, ...) fitted by the engine, wrapped as the deep trainer
    logs it."""
    from ecgops.training.deep import arch_kwargs, fit_net, net_part, task_config
    from ecgops.training.engine import TorchBeatPredictor, select_device

    cfg = task_config(cfg, task)
    k = len(cfg.class_names(task))
    device = select_device("cpu", cfg.deep.num_threads)
    parts = (net_part(cfg, train, []), net_part(cfg, val, []))
    net, _ = fit_net(cfg, arch, arch_kwargs(cfg, arch), k, parts, work / f"ckpt-{arch}", device)
    return TorchBeatPredictor(
        arch, arch_kwargs(cfg, arch), k, net.state_dict(), batch_size=cfg.deep.eval_batch_size
    )


def log_and_register(
    cfg: Config, task: str, name: str, predictor: Any, val: pd.DataFrame, family: str
) -> str:
    """Log ``predictor`` (with its validation calibrator) as a trainer does and register it.

    Returns:
        The ``models:/<name>/<version>`` URI of the new version.
    """
    import mlflow

    from ecgops.evaluation.calibration import fit_from_config
    from ecgops.registry.client import mlflow_client, registered_model_name
    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.tracking import start_run

    classes = cfg.class_names(task)
    x_val, y_val = signals(val), labels(val)
    calibrator = fit_from_config(
        cfg.calibration, family, y_val, predictor.predict_proba(x_val), classes
    )
    with start_run(cfg, task, f"{name}-beat", scheme="beat"):
        info = log_beat_model(predictor, task, classes, x_val[:3], calibrator=calibrator)
    model_name = registered_model_name(cfg, task)
    version = mlflow.register_model(info.model_uri, model_name).version
    if family == "classical":
        mlflow_client(cfg).set_registered_model_alias(model_name, "champion", version)
    return f"models:/{model_name}/{version}"


def write_csv(x: np.ndarray, path: Path) -> Path:
    """Beats as a header-less Kaggle-layout CSV."""
    with path.open("w") as fh:
        for i in range(0, len(x), CSV_BLOCK):
            np.savetxt(fh, x[i : i + CSV_BLOCK], delimiter=",", fmt="%.6g")
    return path


def timed_rate(fn: Any, n: int) -> float:
    """Beats per second of ``fn()`` on ``n`` beats."""
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def measure(cfg: Config, uri: str, x: np.ndarray, csv: Path, work: Path) -> dict[str, Any]:
    """Load time, in-process, bare-predictor and CSV end-to-end throughput of one model."""
    from ecgops.predict import predict_csv
    from ecgops.registry.model import load_model

    started = time.perf_counter()
    loaded = load_model(uri, cfg)
    load_s = time.perf_counter() - started
    python_model = loaded.pyfunc.unwrap_python_model()
    loaded.predict_proba(x[:WARMUP_ROWS])
    in_process = timed_rate(lambda: loaded.predict_proba(x), len(x))
    bare = timed_rate(lambda: python_model.predictor.predict_proba(x), len(x))
    summary = predict_csv(loaded, csv, work / "pred.csv", progress=False)
    return {
        "uri": uri,
        "load_seconds": round(load_s, 2),
        "rows": len(x),
        "chunk_size": loaded.chunk_size,
        "torch_threads": torch.get_num_threads(),
        "in_process_beats_per_s": round(in_process),
        "bare_predictor_beats_per_s": round(bare),
        "csv_end_to_end_beats_per_s": summary["beats_per_s"],
        "csv_seconds": summary["seconds"],
        "loaded": loaded,
    }


def variants(
    name: str, loaded: Any, x: np.ndarray, threads: list[int], batch_sizes: list[int]
) -> list[dict[str, Any]]:
    """In-process beats/s per thread count (torch's, or LightGBM's ``n_jobs``) and, for the
    deep model, per prediction batch size (the logged ``deep.eval_batch_size``)."""
    from ecgops.registry.model import final_estimator

    predictor = loaded.pyfunc.unwrap_python_model().predictor
    deep = hasattr(predictor, "batch_size")  # a TorchBeatPredictor, else a pipeline
    clf = None if deep else final_estimator(predictor)
    saved = (predictor.batch_size, torch.get_num_threads()) if deep else clf.n_jobs
    rows = []
    for n_threads in threads:
        if deep:
            torch.set_num_threads(n_threads)
        else:
            clf.set_params(n_jobs=n_threads)
        for batch in batch_sizes if deep else [None]:
            if deep:
                predictor.batch_size = batch
            loaded.predict_proba(x[:WARMUP_ROWS])
            rate = timed_rate(lambda: loaded.predict_proba(x), len(x))
            rows.append({"threads": n_threads, "batch_size": batch, "beats_per_s": round(rate)})
            print(f"  {name} threads {n_threads} batch {batch}: {rate:,.0f} beats/s", flush=True)
    if deep:
        predictor.batch_size = saved[0]
        torch.set_num_threads(saved[1])
    else:
        clf.set_params(n_jobs=saved)
    return rows


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The results as a markdown table."""
    lines = [
        "| model | in-process beats/s | bare predictor beats/s | CSV end to end beats/s | "
        "target | met (in-process) | best variant beats/s (threads, batch) | load s |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, r in results.items():
        best = max(r.get("variants") or [{}], key=lambda v: v.get("beats_per_s", 0))
        variant = (
            f"{best['beats_per_s']:,} ({best['threads']}, {best['batch_size'] or '-'})"
            if best
            else "-"
        )
        lines.append(
            f"| {name} | {r['in_process_beats_per_s']:,} | {r['bare_predictor_beats_per_s']:,} | "
            f"{r['csv_end_to_end_beats_per_s']:,.0f} | {r['target_beats_per_s']:,} | "
            f"{'yes' if r['meets_target'] else 'no'} | {variant} | {r['load_seconds']} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Train, log and register the models, measure them, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="beats to predict")
    parser.add_argument("--train-rows", type=int, default=10_000, help="training beats")
    parser.add_argument("--val-rows", type=int, default=2_000, help="calibration beats")
    parser.add_argument("--cnn-epochs", type=int, default=1)
    parser.add_argument("--profile", default="full", help="config profile (model sizes)")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[128, 256, 512, 1024])
    parser.add_argument("--variant-rows", type=int, default=20_000, help="beats per variant")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "predict.json"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean the scratch store up
    start_machine = machine()
    default_threads = torch.get_num_threads()  # what a fresh `ecgops predict` process has
    with tempfile.TemporaryDirectory(prefix="ecgops-bench-predict-") as tmp:
        work = Path(tmp)
        cfg = scratch_config(work, args.profile)
        table, task, source = load_table(cfg)
        order = np.random.default_rng(cfg.seed).permutation(len(table))
        train = table.iloc[order[: args.train_rows]]
        val = table.iloc[order[args.train_rows : args.train_rows + args.val_rows]]
        cfg = cfg.model_copy(
            update={"deep": cfg.deep.for_task(task).model_copy(update={"epochs": args.cnn_epochs})}
        )
        print(f"{source}: {len(table):,} beats ({task}); training", flush=True)
        trained = {}
        for name, family, fit in (
            ("lgbm", "classical", lambda: fit_classical(cfg, task, "lgbm", train)),
            (
                "lgbm-features",
                "classical",
                lambda: fit_classical(cfg, task, "lgbm", train, "features"),
            ),
            ("rf", "classical", lambda: fit_classical(cfg, task, "rf", train)),
            ("cnn", "deep", lambda: fit_deep(cfg, task, "cnn", train, val, work)),
            ("rescnn", "deep", lambda: fit_deep(cfg, task, "rescnn", train, val, work)),
            ("transformer", "deep", lambda: fit_deep(cfg, task, "transformer", train, val, work)),
        ):
            started = time.perf_counter()
            predictor = fit()
            trained[name] = log_and_register(cfg, task, name, predictor, val, family)
            print(f"{name}: {trained[name]} ({time.perf_counter() - started:.0f} s)", flush=True)
        torch.set_num_threads(default_threads)  # training set deep.num_threads
        x = signals(draw(table, args.rows, cfg.seed + 2))
        csv = write_csv(x, work / "beats.csv")
        results: dict[str, dict[str, Any]] = {}
        for name, uri in trained.items():
            r = measure(cfg, uri, x, csv, work)
            loaded = r.pop("loaded")
            r["target_beats_per_s"] = TARGETS[name]
            r["meets_target"] = r["in_process_beats_per_s"] >= TARGETS[name]
            print(markdown({name: r}).splitlines()[-1], flush=True)
            few = x[: args.variant_rows]
            r["variants"] = variants(name, loaded, few, args.threads, args.batch_sizes)
            results[name] = r
    table_md = markdown(results)
    print("\n" + table_md)
    write_json(
        {
            "machine_start": start_machine,
            "machine_end": machine(),
            "data": {"source": source, "task": task, "beats": len(table), "rows": args.rows},
            "store": "scratch MLflow store (SQLite + local artifacts in a temporary folder)",
            "profile": args.profile,
            "train_rows": args.train_rows,
            "cnn_epochs": args.cnn_epochs,
            "results": results,
            "table": table_md,
        },
        args.out,
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
