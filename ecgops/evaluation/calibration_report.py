"""The report's calibration table: test ECE and Brier score before -> after, per model.

Pure functions on metrics records (their ``calibration`` entries, written by
:func:`ecgops.evaluation.results.save_evaluation`); :mod:`ecgops.evaluation.report` renders
the table and adds the figures.
"""

from __future__ import annotations

import math
from typing import Any

HEADER = ["task", "split", "model", "method", "val rows", "test ECE", "test Brier"]
NOTE = (
    "Each model's calibrator is fitted on its validation predictions only and stored in its "
    "pyfunc, which serves the calibrated probabilities; the figures are on the test part "
    "(uncalibrated → calibrated). The test metrics above are the calibrated ones; the "
    "validation (selection) metrics are the uncalibrated ones."
)
DIGITS = 3


def _fmt(value: Any) -> str:
    """A figure with :data:`DIGITS` decimals; ``–`` for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{DIGITS}f}"


def _before_after(part: dict[str, Any], metric: str) -> str:
    return f"{_fmt(part.get(f'{metric}_before'))} → {_fmt(part.get(f'{metric}_after'))}"


def calibration_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One table row (see :data:`HEADER`) per record with a calibration entry.

    Args:
        records: metrics records.

    Returns:
        Rows sorted by task, split and model: method (with the reason when it was skipped),
        validation rows it was fitted on, test ECE and Brier score before → after.
    """
    rows = []
    for r in sorted(records, key=lambda r: (r["task"], r["scheme"], r["name"])):
        cal = r.get("calibration")
        if not cal:
            continue
        test = cal.get("test") or {}
        method = str(cal.get("method", "?"))
        if cal.get("skipped_reason"):
            method = f"{method} (skipped: {cal['skipped_reason']})"
        n_fit = (cal.get("fitted") or {}).get("n_fit", "–")
        rows.append(
            [
                r["task"],
                r["scheme"],
                f"`{r['name']}`",
                method,
                str(n_fit),
                _before_after(test, "ece"),
                _before_after(test, "brier"),
            ]
        )
    return rows
