"""Benchmark: tsfresh EfficientFCParameters vs the compact feature set on real beats.

Measures, in one run and on the same beats:

1. extraction speed (beats/s on one core, single process) of both sets on N beats drawn from
   the task's beat table (stratified, seeded), and of the compact set on every beat;
2. LightGBM (the configured pipeline: imputation, relevance filter, imbalance handling) on
   raw beats, compact features and efficient features: balanced accuracy and AUROC on the
   test part of each split scheme (plus grouped-CV mean ± std on PTB's patient split).

Prints a markdown table and writes ``outputs/benchmarks/features.json``.

Usage::

    python benchmarks/bench_features.py --task ptb --n-beats 200
    python benchmarks/bench_features.py --skip-accuracy         # speed only
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ptb", choices=["ptb", "mitbih"])
    parser.add_argument("--n-beats", type=int, default=200, help="beats for the speed test")
    parser.add_argument("--profile", default=None, help="params profile (default: params.yaml)")
    parser.add_argument("--schemes", nargs="+", default=["beat", "patient"])
    parser.add_argument("--skip-accuracy", action="store_true", help="speed only")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with processed/ and splits/ (default: params.yaml paths)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default: <outputs>/benchmarks/features.json)",
    )
    return parser.parse_args(argv)


def _config(args: argparse.Namespace):
    from ecgops.config import load_config

    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        base = args.data_dir.resolve()
        overrides["paths"] = {"processed": str(base / "processed"), "splits": str(base / "splits")}
    return load_config(profile=args.profile, overrides=overrides or None)


def _sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Row indices of ``n`` beats drawn per class in proportion (seeded), in table order."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    rows = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rows.append(rng.choice(members, max(1, round(n * len(members) / len(y))), replace=False))
    return np.sort(np.concatenate(rows))


def _timed(fn, min_seconds: float = 1.0, max_repeats: int = 20) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over repeats lasting at least ``min_seconds`` in all."""
    times, result, total = [], None, 0.0
    while len(times) < max_repeats and (total < min_seconds or len(times) < 3):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        total += times[-1]
        if times[-1] > min_seconds:
            break
    return float(np.median(times)), result


def speed(cfg, x: np.ndarray, x_all: np.ndarray) -> dict[str, Any]:
    """Single-process extraction speed of both sets on the same beats."""
    from ecgops.features.tsfeatures import compact_spec, extract_features

    spec = compact_spec(cfg)
    # warm-up: imports and first-call costs are not extraction speed
    extract_features(x[:2], "efficient")
    extract_features(x[:2], "compact", spec)
    eff_s, eff = _timed(
        lambda: extract_features(x, "efficient", n_jobs=1, chunk_size=len(x)),
        min_seconds=0.0,
        max_repeats=1,
    )
    cmp_s, cmp = _timed(lambda: extract_features(x, "compact", spec, n_jobs=1, chunk_size=len(x)))
    all_s, _ = _timed(
        lambda: extract_features(x_all, "compact", spec, n_jobs=1, chunk_size=len(x_all)),
        min_seconds=0.0,
    )
    return {
        "n_beats": len(x),
        "efficient": {"seconds": eff_s, "beats_per_s": len(x) / eff_s, "n_features": eff.shape[1]},
        "compact": {"seconds": cmp_s, "beats_per_s": len(x) / cmp_s, "n_features": cmp.shape[1]},
        "compact_all_beats": {
            "n_beats": len(x_all),
            "seconds": all_s,
            "beats_per_s": len(x_all) / all_s,
        },
        "speedup": eff_s / cmp_s,
    }


def accuracy(cfg, task: str, schemes: list[str], table: pd.DataFrame) -> dict[str, Any]:
    """LightGBM on raw beats, compact and efficient features for each split scheme."""
    from ecgops.data.splits import load_split
    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.features.tsfeatures import FeatureExtractor
    from ecgops.schema import labels, signals
    from ecgops.training.classical import (
        FeatureLookup,
        cross_validate_patients,
        fit_predict,
        stratified_subsample,
    )

    beats = signals(table)
    lookups: dict[str, FeatureLookup | None] = {"raw": None}
    extraction: dict[str, float] = {}
    for set_name in ("compact", "efficient"):
        extractor = FeatureExtractor.from_config(cfg, set_name)
        start = time.perf_counter()
        feats = extractor.frame(beats, progress=True).to_numpy(dtype=np.float64)
        extraction[set_name] = time.perf_counter() - start
        lookups[set_name] = FeatureLookup.from_arrays(extractor, beats, feats)

    rows: list[dict[str, Any]] = []
    imbalance = cfg.classical.imbalance
    for scheme in schemes:
        parts = load_split(cfg, task, scheme)
        train = stratified_subsample(parts["train"], cfg.classical.max_train_rows, cfg.seed)
        for set_name, lookup in lookups.items():
            run_cfg = (
                cfg
                if set_name == "raw"
                else cfg.model_copy(
                    update={"features": cfg.features.model_copy(update={"set": set_name})}
                )
            )
            model_input = "raw" if set_name == "raw" else "features"
            fitted = fit_predict(
                run_cfg,
                task,
                "lgbm",
                model_input,
                imbalance,
                train,
                {"test": parts["test"]},
                lookup,
            )
            scores = classification_metrics(labels(parts["test"]), fitted["proba"]["test"])
            row = {
                "scheme": scheme,
                "input": set_name,
                "n_train": len(train),
                "n_test": len(parts["test"]),
                "fit_seconds": fitted["timing"]["fit_seconds"],
                **{k: scores[k] for k in ("balanced_accuracy", "auroc", "macro_f1")},
            }
            if task == "ptb" and scheme == "patient":
                cv = cross_validate_patients(run_cfg, task, "lgbm", model_input, imbalance, lookup)
                row["cv_balanced_accuracy_mean"] = cv["balanced_accuracy_mean"]
                row["cv_balanced_accuracy_std"] = cv["balanced_accuracy_std"]
                row["cv_folds"] = cv["folds"]
            rows.append(row)
            print(
                f"  lgbm {set_name:9s} {scheme:7s} bal.acc {row['balanced_accuracy']:.3f}",
                file=sys.stderr,
            )
    return {
        "imbalance": imbalance,
        "extraction_seconds_all_beats": extraction,
        "n_jobs": cfg.features.n_jobs,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    """The benchmark as markdown tables."""
    sp = result["speed"]
    lines = [
        f"Feature extraction speed ({sp['n_beats']} {result['task']} beats, one process, "
        f"{result['machine']['cpus']} CPUs shared)",
        "",
        "| set | features | seconds | beats/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in ("efficient", "compact"):
        s = sp[name]
        lines.append(
            f"| {name} | {s['n_features']} | {s['seconds']:.2f} | {s['beats_per_s']:.1f} |"
        )
    lines += [
        "",
        f"Compact is **{sp['speedup']:.0f}x** faster than EfficientFCParameters "
        f"(compact on all {sp['compact_all_beats']['n_beats']} beats: "
        f"{sp['compact_all_beats']['beats_per_s']:.0f} beats/s).",
        "",
    ]
    acc = result.get("accuracy")
    if acc:
        lines += [
            f"LightGBM ({acc['imbalance']}), test part of each split"
            " (PTB patient: also grouped CV mean ± std)",
            "",
            "| split | input | balanced acc. | AUROC | macro F1 | CV balanced acc. | fit s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in acc["rows"]:
            cv = (
                f"{r['cv_balanced_accuracy_mean']:.3f} ± {r['cv_balanced_accuracy_std']:.3f}"
                if "cv_balanced_accuracy_mean" in r
                else ""
            )
            lines.append(
                f"| {r['scheme']} | {r['input']} | {r['balanced_accuracy']:.3f} | "
                f"{r['auroc']:.3f} | {r['macro_f1']:.3f} | {cv} | {r['fit_seconds']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result written to JSON."""
    args = _parse(argv)
    cfg = _config(args)
    from ecgops.data.splits import read_table
    from ecgops.io import write_json
    from ecgops.schema import labels, signals
    from ecgops.tracking import package_versions

    table = read_table(cfg, args.task)
    rows = _sample(labels(table), args.n_beats, cfg.seed)
    result: dict[str, Any] = {
        "task": args.task,
        "profile": cfg.profile,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "packages": {
            k: v
            for k, v in package_versions().items()
            if k in ("numpy", "tsfresh", "lightgbm", "scikit-learn")
        },
        "speed": speed(cfg, signals(table)[rows], signals(table)),
    }
    if not args.skip_accuracy:
        result["accuracy"] = accuracy(cfg, args.task, args.schemes, table)
    out = args.out or cfg.path("outputs") / "benchmarks" / "features.json"
    write_json(result, out)
    print(markdown(result))
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
