#!/usr/bin/env python
"""Throughput of ``ecgops annotate`` (beats/s) on full 30-minute MIT-BIH records.

Usage (from the project root)::

    nice .venv/bin/python benchmarks/bench_annotate.py [--record 100] [--source DIR]

The model is a small LightGBM (the profile's ``classical.lgbm`` settings) trained on the
fixture beats (``tests/fixtures/beats_mitbih.parquet``, 200 real beats) and logged with the
project's pyfunc wrapper into a temporary SQLite MLflow store: the number measures the
annotation pipeline (reading, resampling, segmentation, prediction through the pyfunc, writing),
not a production model's accuracy. Each record is annotated twice, with its reference R-peaks
and with the XQRS detector; both are then evaluated beat by beat (EC57) against the ``.atr``.
Results are printed and written to ``outputs/benchmarks/annotate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from ecgops.config import load_config  # noqa: E402


def small_model(cfg, tracking: str) -> str:
    """Train the small LightGBM on the fixture beats and log it; return its runs:/ URI."""
    import mlflow
    import pandas as pd
    from lightgbm import LGBMClassifier

    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.schema import labels, signals

    table = pd.read_parquet(ROOT / "tests" / "fixtures" / "beats_mitbih.parquet")
    x, y = signals(table), labels(table)
    p = cfg.classical.lgbm
    clf = LGBMClassifier(n_estimators=p.n_estimators, learning_rate=p.learning_rate,
                         num_leaves=p.num_leaves, n_jobs=1, verbose=-1).fit(x, y)  # fmt: skip
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment("bench-annotate")
    with mlflow.start_run() as run:
        log_beat_model(clf, "mitbih", cfg.class_names("mitbih"), x[:3])
    return f"runs:/{run.info.run_id}/model"


def main() -> None:
    """Annotate the records with reference and detected R-peaks; time and evaluate them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="append", default=None, help="record name (100)")
    parser.add_argument("--source", type=Path, default=None, help="mitdb folder")
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()

    from ecgops.evaluation.beat_matching import evaluate_directory
    from ecgops.prediction.annotate import annotate_records

    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        tracking = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = tracking
        cfg = load_config(root=ROOT, profile=args.profile)
        source = args.source or load_config(root=ROOT, profile="full").raw_source / "mitdb"
        records = [source / r for r in (args.record or ["100"])]
        uri = small_model(cfg, tracking)
        result: dict = {"model": "LightGBM on the 200 fixture beats", "runs": {}}
        for mode in ("reference", "xqrs"):
            out = Path(tmp) / mode
            summary = annotate_records(cfg, "mitbih", records, out, reference_peaks=mode ==
                                       "reference", model_uri=uri, progress=False)  # fmt: skip
            table = evaluate_directory(cfg, source, out)["table"]
            result["runs"][mode] = {
                "beats": summary["beats"],
                "seconds": summary["seconds"],
                "beats_per_s": summary["beats_per_s"],
                "per_record": [
                    {k: e[k] for k in ("record", "duration_s", "beats", "seconds", "beats_per_s")}
                    for e in summary["records"]
                ],
                "qrs": table[["record", "n_ref", "n_test", "qrs_se", "qrs_ppv"]].to_dict("records"),
            }
            gross = table.iloc[-1]
            print(f"{mode:9s}: {summary['beats']} beats in {summary['seconds']:.1f} s = "
                  f"{summary['beats_per_s']} beats/s (model loaded before timing); QRS "
                  f"Se {gross['qrs_se']:.4f} +P {gross['qrs_ppv']:.4f}")  # fmt: skip
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    out_file = cfg.path("outputs") / "benchmarks" / "annotate.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
