"""Building blocks of the results report: sections, number formatting, Markdown tables and the
reference figures (the reproduced study's, and the published ones the modelling issues name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")
SHORT = {
    "accuracy": "acc",
    "balanced_accuracy": "bal acc",
    "macro_f1": "macro F1",
    "auroc": "AUROC",
    "auprc": "AUPRC",
}
FAMILY_ORDER = {"classical": 0, "deep": 1, "transfer": 2}
PROBE_PREFIX = "probe-"
"""Metrics records of embedding probes, which are not models of the task."""
NEW_PATIENTS = "patient"
"""The scheme whose test part holds patients (PTB) / records (MIT-BIH DS2) no training saw."""
LIKE_FOR_LIKE = "beat"
"""The study's scheme (random beat split): the only one where its figures compare directly."""


@dataclass
class Section:
    """A titled block of Markdown with the figures it shows.

    Attributes:
        title: heading.
        markdown: body (tables, lists, paragraphs).
        figures: (caption, PNG path) shown after the body.
        anchor: HTML id of the section (empty: derived from the title).
    """

    title: str
    markdown: str
    figures: list[tuple[str, Path]] = field(default_factory=list)
    anchor: str = ""


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``–`` for None, NaN or a non-number."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def rate(value: Any) -> str:
    """A rate with thousands separators and no decimals (``–`` when missing)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:,.0f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table.

    Args:
        header: column names.
        rows: cells, one list per row.

    Returns:
        The table's Markdown.
    """
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _reference_file() -> dict[str, Any]:
    text = resources.files("ecgops.evaluation").joinpath("study_reference.yaml").read_text()
    return yaml.safe_load(text) or {}


def study_reference() -> dict[str, Any]:
    """The reproduced study's figures: task -> scheme -> model -> metric (study_reference.yaml)."""
    return {k: v for k, v in _reference_file().items() if k != "published"}


def published_reference(task: str) -> list[dict[str, Any]]:
    """Published results the modelling issues compare with (``published:`` of
    study_reference.yaml).

    Args:
        task: ``ptb`` or ``mitbih``.

    Returns:
        One dict per publication: ``source``, ``data`` and its figures (missing: not given).
    """
    return list((_reference_file().get("published") or {}).get(task) or [])


def task_records(records: list[dict[str, Any]], task: str, scheme: str) -> list[dict[str, Any]]:
    """The model records of a task and split (probes left out), classical first, then by name."""
    chosen = [
        r
        for r in records
        if r["task"] == task and r["scheme"] == scheme and not r["name"].startswith(PROBE_PREFIX)
    ]
    return sorted(chosen, key=lambda r: (FAMILY_ORDER.get(r.get("family", ""), 9), r["name"]))


def best_by_validation(
    records: list[dict[str, Any]], task: str, scheme: str, metric: str = "balanced_accuracy"
) -> dict[str, Any] | None:
    """Best model of a task/split by validation ``metric`` (the selection metric).

    Records without validation metrics are not ranked (never by their test score).

    Args:
        records: metrics records.
        task, scheme: which ones to rank.
        metric: validation metric.

    Returns:
        The best record, or None when no record of the task/split has validation metrics.
    """
    chosen = [r for r in task_records(records, task, scheme) if r.get("val")]
    if not chosen:
        return None
    return max(chosen, key=lambda r: r["val"].get(metric, -1))
