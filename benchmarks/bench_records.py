#!/usr/bin/env python
"""Record-level vs beat-level balanced accuracy of the project's trained PTB runs.

Usage (from the project root, after the main job or ``dvc repro``)::

    .venv/bin/python benchmarks/bench_records.py [--scheme patient] [--top 6]

For each finished PTB run of the scheme that logged a model and shares the project's profile,
data version and split version (the runs the registry compares; the ``--top`` best by
validation balanced accuracy), it predicts the scheme's test beats and compares:

- beat-level balanced accuracy;
- record-level, argmax of the record's mean beat probabilities;
- record-level, the rule learned on the validation records (``ecgops.evaluation.records``),
  which is what ``ecgops predict --record`` applies to a registered model.

The record rule never sees the test part. Results are printed and written to
``outputs/benchmarks/records.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from ecgops.config import load_config  # noqa: E402


def main() -> None:
    """Evaluate the best runs of the scheme at beat and record level."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="patient", choices=["beat", "patient"])
    parser.add_argument("--top", type=int, default=6, help="best runs by validation metric")
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()

    from ecgops.evaluation.records import evaluate_records
    from ecgops.registry.candidates import find_candidates, run_config
    from ecgops.registry.client import mlflow_client
    from ecgops.registry.model import load_model

    cfg = load_config(root=ROOT, profile=args.profile)
    candidates = find_candidates(mlflow_client(cfg), cfg, "ptb", args.scheme)[: args.top]
    rows = []
    for c in candidates:
        out = evaluate_records(cfg, "ptb", load_model(c.model_uri, cfg), scheme=args.scheme)
        row = {
            "config": run_config(c.run, args.scheme),
            "run_id": c.run.info.run_id,
            "model": c.model_uri,
            **out,
        }
        rows.append(row)
        print(
            f"{row['config']:28s} beats {row['beats']:5d} records {row['records']:4d}  "
            f"beat {row['beat_balanced_accuracy']:.3f}  record argmax "
            f"{row['record_balanced_accuracy']:.3f}  record rule "
            f"{row['record_balanced_accuracy_rule']:.3f} ({row['rule']})"
        )
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "cpus": os.cpu_count(),
        "profile": cfg.profile,
        "scheme": args.scheme,
        "rows": rows,
    }
    out_path = cfg.path("outputs") / "benchmarks" / "records.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
