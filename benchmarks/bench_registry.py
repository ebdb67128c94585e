#!/usr/bin/env python
"""Registry, batch prediction and serving benchmark (issue 7's performance numbers).

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_registry.py                  # scratch registry
    .venv/bin/python benchmarks/bench_registry.py --registry project --task ptb

``--registry scratch`` (default) starts a throwaway ``mlflow server`` on 127.0.0.1 (SQLite and
artifacts in a temporary folder), trains LightGBM pipelines on the training part of each task's
processed beat table (``data/processed`` + ``data/splits``; the test fixtures when absent),
logs two runs per task and times the registry operations (log, register, dry-run and real
promotion, alias lookup, download + load, rollback). ``--registry project`` uses the project's
configured registry and each task's current champion (read-only: alias lookup, load).

Then for the champion of each task it measures:

- batch prediction throughput (``ecgops.predict.predict_csv``, beats/s) on a CSV of ``--rows``
  beats drawn from the table, in a child process whose peak RSS is reported;
- p50/p99 latency of single-beat requests to ``mlflow models serve`` (``--requests``).

Results are printed and written to ``outputs/benchmarks/registry.json``. Timings are wall
clock on this machine and include MLflow's HTTP round trips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from ecgops.config import Config, deep_merge, load_config  # noqa: E402
from ecgops.schema import SIGNAL_COLUMNS, labels, signals  # noqa: E402


@contextmanager
def timed(store: dict[str, float], key: str):
    """Record the wall time of a block (seconds) under ``key``."""
    start = time.perf_counter()
    yield
    store[key] = round(time.perf_counter() - start, 3)


def task_parts(cfg: Config, task: str, scheme: str) -> tuple[dict[str, pd.DataFrame], str]:
    """The task's split parts, from the project data or the test fixtures."""
    try:
        from ecgops.data.splits import load_split

        return load_split(cfg, task, scheme), f"data/processed/{task}.parquet ({scheme} split)"
    except Exception as exc:  # noqa: BLE001 - fall back on the fixtures
        from fixtures_mlflow import parts

        print(f"{task}: project data unavailable ({exc}); using the test fixtures")
        return parts(task), f"tests/fixtures/beats_{task}.parquet"


def train(cfg: Config, task: str, train_df: pd.DataFrame, rows: int, seed: int) -> Any:
    """A LightGBM pipeline (class weights) on at most ``rows`` training beats."""
    from ecgops.models.classical import build_pipeline

    sample = train_df.sample(min(rows, len(train_df)), random_state=seed)
    pipe = build_pipeline(cfg, "lgbm", "raw", len(cfg.class_names(task)), imbalance="class_weight")
    return pipe.fit(signals(sample), labels(sample))


def log_run(cfg: Config, task: str, predictor: Any, parts: dict, name: str, scheme: str) -> None:
    """A training run as the trainers log it (metrics + pyfunc model)."""
    import mlflow

    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.tracking import start_run

    with start_run(cfg, task, name, scheme=scheme):
        for part in ("val", "test"):
            x, y = signals(parts[part]), labels(parts[part])
            metrics = classification_metrics(y, predictor.predict_proba(x))
            mlflow.log_metrics({f"{part}_{k}": v for k, v in metrics.items() if np.isfinite(v)})
        log_beat_model(predictor, task, cfg.class_names(task), signals(parts["test"])[:3])


def scratch_registry(cfg: Config, task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Two runs, registered and promoted in turn, with every registry operation timed."""
    from ecgops.registry.client import (
        CHAMPION,
        alias_version,
        mlflow_client,
        registered_model_name,
    )
    from ecgops.registry.promote import promote, rollback
    from ecgops.registry.register import register_best

    scheme = cfg.splits.scheme
    parts, source = task_parts(cfg, task, scheme)
    print(f"[{time.strftime('%H:%M:%S')}] {task}: training", file=sys.stderr, flush=True)
    ops: dict[str, float] = {}
    small = max(50, min(args.train_rows, len(parts["train"])) // 10)
    weak = train(cfg, task, parts["train"], small, cfg.seed)  # a first, weaker champion
    strong = train(cfg, task, parts["train"], args.train_rows, cfg.seed)
    eval_data = parts["test"]
    with timed(ops, "log_model_s"):
        log_run(cfg, task, weak, parts, "lgbm-small", scheme)
    with timed(ops, "register_new_version_s"):
        register_best(cfg, task, scheme, train_data=parts["train"])
    with timed(ops, "register_again_idempotent_s"):
        register_best(cfg, task, scheme, train_data=parts["train"])
    with timed(ops, "promote_first_champion_s"):
        first = promote(cfg, task, eval_data=eval_data)
    log_run(cfg, task, strong, parts, "lgbm", scheme)
    register_best(cfg, task, scheme, train_data=parts["train"])
    with timed(ops, "promote_dry_run_s"):
        promote(cfg, task, dry_run=True, eval_data=eval_data)
    with timed(ops, "promote_s"):
        second = promote(cfg, task, eval_data=eval_data)
    with timed(ops, "rollback_s"):
        if second.promoted:
            rollback(cfg, task)
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task)
    with timed(ops, "alias_lookup_s"):
        alias_version(client, name, CHAMPION)
    if second.promoted:  # restore the better model as champion for the throughput numbers
        register_best(cfg, task, scheme, train_data=parts["train"])
        promote(cfg, task, eval_data=eval_data)
    return {
        "data": source,
        "eval_beats": len(eval_data),
        "decisions": [first.action, second.action],
        "gate_metric": second.challenger_metrics.get(cfg.registry.select_metric),
        "ops": ops,
        "table": parts,
    }


def record_level(cfg: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Beat- vs record-level balanced accuracy of a PTB model trained on the patient split."""
    import mlflow

    from ecgops.evaluation.records import evaluate_records
    from ecgops.registry.model import load_model

    parts, source = task_parts(cfg, "ptb", "patient")
    model = train(cfg, "ptb", parts["train"], args.train_rows, cfg.seed)
    log_run(cfg, "ptb", model, parts, "lgbm-patient", "patient")
    uri = f"runs:/{mlflow.last_active_run().info.run_id}/model"
    out = evaluate_records(cfg, "ptb", load_model(uri, cfg), scheme="patient")
    return {"data": source, "model": uri, **out}


def batch_throughput(cfg: Config, uri: str, table: pd.DataFrame, rows: int, work: Path) -> dict:
    """predict_csv on ``rows`` beats in a child process (its peak RSS is measured)."""
    rng = np.random.default_rng(0)
    x = signals(table)[rng.integers(0, len(table), rows)]
    src = work / f"beats_{rows}.csv"
    with src.open("w") as fh:
        for i in range(0, rows, 10_000):
            np.savetxt(fh, x[i : i + 10_000], delimiter=",", fmt="%.6g")
    code = (
        "import json, sys, resource; from ecgops.config import load_config; "
        "from ecgops.predict import predict_csv; "
        f"cfg = load_config(root=__import__('pathlib').Path({str(cfg.root)!r}), "
        f"profile={cfg.profile!r}, overrides=json.loads({json.dumps(json.dumps(OVERRIDES))})); "
        f"s = predict_csv({uri!r}, {str(src)!r}, {str(work / 'pred.csv')!r}, cfg=cfg, "
        "progress=False); "
        "s['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps(s))"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    total = time.perf_counter() - start
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "rows": rows,
        "csv_mb": round(src.stat().st_size / 1e6, 1),
        "beats_per_s": summary["beats_per_s"],
        "predict_seconds": summary["seconds"],
        "process_seconds_incl_imports_and_load": round(total, 2),
        "peak_rss_mb": round(summary["peak_rss_mb"], 1),
        "chunk_size": cfg.serving.batch_chunk_size,
    }


def served_latency(cfg: Config, task: str, table: pd.DataFrame, n: int, work: Path) -> dict:
    """p50/p99 of single-beat requests to the served champion."""
    from fixtures_mlflow import free_port

    from ecgops import serve

    port = free_port()
    proc = serve.start(cfg, task=task, port=port, log_file=work / f"serve-{task}.log")
    try:
        startup = serve.wait_ready("127.0.0.1", port, cfg.serving.startup_timeout_s, proc)
        x = signals(table)[:n].astype(np.float64)
        for row in x[:10]:  # warm-up
            serve.invoke("127.0.0.1", port, {"inputs": [row.tolist()]})
        times = []
        for i in range(n):
            payload = {"inputs": [x[i % len(x)].tolist()]}
            start = time.perf_counter()
            status, _ = serve.invoke("127.0.0.1", port, payload)
            times.append((time.perf_counter() - start) * 1000)
            assert status == 200
        batch = x[: min(1000, len(x))]
        start = time.perf_counter()
        serve.invoke(
            "127.0.0.1",
            port,
            {"dataframe_split": {"columns": SIGNAL_COLUMNS, "data": batch.tolist()}},
        )
        batch_s = time.perf_counter() - start
    finally:
        serve.stop(proc)
    return {
        "requests": n,
        "startup_s": round(startup, 1),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
        "mean_ms": round(statistics.mean(times), 2),
        "batch_1000_request_s": round(batch_s, 3),
    }


OVERRIDES: dict[str, Any] = {}


def save(result: dict[str, Any], out: Path, stage: str) -> None:
    """Write the results so far (a long run keeps what it measured) and log the stage."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"[{time.strftime('%H:%M:%S')}] {stage}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", choices=["scratch", "project"], default="scratch")
    parser.add_argument("--task", action="append", choices=["ptb", "mitbih"])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[100_000], help="beats in the batch CSV(s)"
    )
    parser.add_argument("--requests", type=int, default=200, help="single-beat requests")
    parser.add_argument("--train-rows", type=int, default=20_000, help="scratch model size")
    parser.add_argument("--profile", default="quick")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "registry.json"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up on `timeout`
    tasks = args.task or ["ptb", "mitbih"]
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "load_avg_start": os.getloadavg(),
        "registry": args.registry,
        "tasks": {},
    }
    with tempfile.TemporaryDirectory(prefix="ecgops-bench-") as tmp:
        work = Path(tmp)
        server = None
        if args.registry == "scratch":
            from fixtures_mlflow import free_port, kill_group, wait_http

            port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server",
                 "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                 "--artifacts-destination", str(work / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            uri = f"http://127.0.0.1:{port}"
            start = time.perf_counter()
            wait_http(f"{uri}/health", 300, server)
            result["tracking_server_startup_s"] = round(time.perf_counter() - start, 1)
            OVERRIDES.update(
                {
                    "paths": {"outputs": str(work / "outputs")},
                    "tracking": {"uri": uri, "artifact_root": None},
                }
            )
            os.environ["MLFLOW_TRACKING_URI"] = uri
        cfg = load_config(root=ROOT, profile=args.profile, overrides=deep_merge({}, OVERRIDES))
        try:
            for task in tasks:
                entry: dict[str, Any] = {}
                if args.registry == "scratch":
                    entry = scratch_registry(cfg, task, args)
                    table = entry.pop("table")["test"]
                else:
                    from ecgops.registry.client import (
                        CHAMPION,
                        alias_version,
                        mlflow_client,
                        registered_model_name,
                    )

                    ops: dict[str, float] = {}
                    client = mlflow_client(cfg)
                    with timed(ops, "alias_lookup_s"):
                        mv = alias_version(client, registered_model_name(cfg, task), CHAMPION)
                    if mv is None:
                        print(f"{task}: no champion in the project registry; skipped")
                        continue
                    entry = {"champion_version": mv.version, "ops": ops}
                    table = task_parts(cfg, task, cfg.splits.scheme)[0]["test"]
                champion = f"models:/{cfg.experiment_name(task)}@champion"
                from ecgops.registry.model import load_model

                result["tasks"][task] = entry
                with timed(entry.setdefault("ops", {}), "download_and_load_s"):
                    load_model(champion, cfg)
                save(result, args.out, f"{task}: registry done")
                entry["batch"] = [
                    batch_throughput(cfg, champion, table, rows, work) for rows in args.rows
                ]  # peak RSS flat in the number of rows = bounded memory
                save(result, args.out, f"{task}: batch done")
                entry["serving"] = served_latency(cfg, task, table, args.requests, work)
                save(result, args.out, f"{task}: serving done")
                print(json.dumps({task: entry}, indent=2))
            if args.registry == "scratch" and "ptb" in tasks:
                result["ptb_record_level"] = record_level(cfg, args)
                print(json.dumps(result["ptb_record_level"], indent=2))
        finally:
            if server is not None:
                kill_group(server)
    result["load_avg_end"] = os.getloadavg()
    result["peak_rss_parent_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    save(result, args.out, f"wrote {args.out}")


if __name__ == "__main__":
    main()
