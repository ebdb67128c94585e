"""The report's registry table: the last promotion decision per registered model, from the
decision files ``<outputs>/registry/{task}[-context].json`` (:mod:`ecgops.registry.promote`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.errors import DataError
from ecgops.evaluation.report_format import Section, fmt, md_table

HEADER = [
    "registered model",
    "decision",
    "challenger",
    "champion before",
    "metric",
    "challenger on gate",
    "champion on gate",
    "difference",
    "margin",
    "failed checks",
    "time (UTC)",
]
NOTE = (
    "The last decision of the promotion gate per registered model: both versions scored on the "
    "sealed gate set, with bootstrap intervals over its patients/records; `better` needs the "
    "lower bound of the difference above the margin. Full reasons: `ecgops promote --dry-run` "
    "and the `gate.*` tags of each version."
)


def _interval(entry: dict[str, Any] | None, signed: bool = False) -> str:
    """``estimate [low, high]`` of a comparison entry (``–`` when missing)."""
    if not entry:
        return "–"
    if signed:
        return f"{entry['estimate']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"
    return f"{fmt(entry['estimate'])} [{fmt(entry['low'])}, {fmt(entry['high'])}]"


def decision_row(path: Path, info: dict[str, Any]) -> list[str]:
    """One table row of a decision file (see :data:`HEADER`).

    Args:
        path: the decision file (named in errors).
        info: its content (:meth:`ecgops.registry.promote.Decision.to_dict`).

    Returns:
        The row's cells.

    Raises:
        DataError: the file is not a decision record.
    """
    if not isinstance(info, dict) or "action" not in info:
        raise DataError(path, "not a promotion decision (no 'action')")
    c = info.get("comparison") or {}
    metric = info.get("metric") or c.get("metric") or ""
    ours = c.get("challenger")  # without a comparison: the plain figure, no interval
    failed = [ch.get("name", "?") for ch in info.get("checks") or [] if not ch.get("passed")]
    plain = (info.get("challenger_metrics") or {}).get(metric)
    return [
        f"`{info.get('model', path.stem)}`",
        f"**{info['action']}**",
        str(info.get("challenger") or "–"),
        str(info.get("champion") or "–"),
        metric or "–",
        _interval(ours) if ours else fmt(plain),
        _interval(c.get("champion")),
        _interval(c.get("difference"), signed=True),
        fmt(info.get("margin")),
        ", ".join(failed) or "none",
        str(info.get("time", "")).replace("T", " ").removesuffix("+00:00"),
    ]


def registry_section(cfg: Config) -> Section:
    """The registry decisions as a table (a note when there are none).

    Args:
        cfg: configuration (``<outputs>/registry``).

    Returns:
        The section.

    Raises:
        DataError: a decision file is not JSON or not a decision.
    """
    reg_dir = cfg.path("outputs") / "registry"
    rows = []
    for path in sorted(reg_dir.glob("*.json")) if reg_dir.is_dir() else []:
        try:
            info = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not JSON: {exc}") from exc
        rows.append(decision_row(path, info))
    title = "Registry decisions"
    if not rows:
        return Section(title, "_No registry decisions recorded._", anchor="registry")
    return Section(title, NOTE + "\n\n" + md_table(HEADER, rows), anchor="registry")
