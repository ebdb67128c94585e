"""Benchmark: Great Expectations validation of a large beat table (issue 19).

The speed target lives here, not in the unit suite: validating 100,000 MIT-BIH rows should take
under ``TARGET_S`` seconds on the 2-core machine. The table repeats the real fixture beats, each
copy scaled differently so no two rows repeat (the duplicate expectation stays meaningful).

    python benchmarks/bench_validation.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.config import load_config
from ecgops.data.validation import validate_beats
from ecgops.schema import SIGNAL_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "beats_mitbih.parquet"
TARGET_S = 30.0


def big_table(rows: int) -> pd.DataFrame:
    """``rows`` real-shaped MIT-BIH rows: the fixture beats repeated, each copy rescaled."""
    beats = pd.read_parquet(FIXTURE)
    copies = max(1, rows // len(beats))
    big = pd.concat([beats] * copies, ignore_index=True)
    scale = np.random.default_rng(0).permutation(np.linspace(0.5, 1.0, len(big)))[:, None]
    big[SIGNAL_COLUMNS] = (big[SIGNAL_COLUMNS].to_numpy() * scale).astype(np.float32)
    big["record"] = big["record"] + "-" + (np.arange(len(big)) // len(beats)).astype(str)
    return big


def main() -> None:
    """Time one validation and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    cfg = load_config(root=ROOT, profile="smoke")
    big = big_table(args.rows)
    started = time.perf_counter()
    report = validate_beats(big, "mitbih", cfg, "big.parquet")
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": report.n_rows,
                "success": report.success,
                "seconds": round(elapsed, 2),
                "target_s": TARGET_S,
                "met": elapsed < TARGET_S,
            }
        )
    )


if __name__ == "__main__":
    main()
