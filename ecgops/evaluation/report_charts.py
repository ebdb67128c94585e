"""The report's own figures: one chart per task of every model on both splits, and example
beats per class (matplotlib, Agg backend, PNG files under ``outputs/figures``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.evaluation.report_format import LIKE_FOR_LIKE, NEW_PATIENTS, task_records
from ecgops.evaluation.results import AAMI_TASK

BAR_HEIGHT = 0.38
ROW_INCHES = 0.42
MIN_INCHES = 2.5
CHART_WIDTH_INCHES = 8.0
DPI = 100
SCHEME_COLOURS = {LIKE_FOR_LIKE: "#9ab8d8", NEW_PATIENTS: "#1f5f9f"}
SCHEME_LABELS = {
    LIKE_FOR_LIKE: "random beat split (test)",
    NEW_PATIENTS: "new patients: patient split (test)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def report_figure_dir(cfg: Config) -> Path:
    """``<outputs>/figures/report``: where the report's own figures go."""
    return cfg.path("outputs") / "figures" / "report"


def chart_values(records: list[dict[str, Any]], task: str) -> pd.DataFrame:
    """Test balanced accuracy of every model of a task on both splits.

    Args:
        records: metrics records.
        task: the task.

    Returns:
        One row per model name (in report order), one column per scheme (NaN: not run).
    """
    values: dict[str, dict[str, float]] = {}
    for scheme in (LIKE_FOR_LIKE, NEW_PATIENTS):
        for r in task_records(records, task, scheme):
            score = (r.get("test") or {}).get("balanced_accuracy")
            values.setdefault(r["name"], {})[scheme] = np.nan if score is None else float(score)
    return pd.DataFrame.from_dict(values, orient="index").reindex(
        columns=[LIKE_FOR_LIKE, NEW_PATIENTS]
    )


def model_chart(cfg: Config, records: list[dict[str, Any]], task: str) -> Path | None:
    """Grouped horizontal bars: each model's test balanced accuracy on the beat and the patient
    split, so the gap between known and new patients shows at a glance.

    Args:
        cfg: configuration (figure folder).
        records: metrics records.
        task: the task.

    Returns:
        The PNG path, or None when no model of the task was run.
    """
    values = chart_values(records, task)
    if values.empty:
        return None
    plt = _pyplot()
    height = max(MIN_INCHES, ROW_INCHES * len(values) + 1.5)
    fig, ax = plt.subplots(figsize=(CHART_WIDTH_INCHES, height))
    y = np.arange(len(values))
    for offset, scheme in zip((-BAR_HEIGHT / 2, BAR_HEIGHT / 2), values.columns, strict=True):
        bars = ax.barh(
            y + offset,
            values[scheme].fillna(0.0),
            height=BAR_HEIGHT,
            color=SCHEME_COLOURS[scheme],
            label=SCHEME_LABELS[scheme],
        )
        for bar, v in zip(bars, values[scheme], strict=True):
            text = "not run" if np.isnan(v) else f"{v:.3f}"
            ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, text,
                    va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(y, values.index)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    metric = "5-class balanced accuracy" if task == AAMI_TASK else "balanced accuracy"
    ax.set_xlabel(f"test {metric}")
    ax.set_title(f"{task}: every model, known patients vs new patients", pad=22)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    path = report_figure_dir(cfg) / f"models-{task}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def example_beats_figure(cfg: Config, task: str, df: pd.DataFrame, names: list[str]) -> Path:
    """A few example beats per class of a beat table.

    Args:
        cfg: configuration (seed, sampling rate, figure folder).
        task: the task.
        df: its beat table.
        names: class names in label order.

    Returns:
        The PNG path.
    """
    from ecgops.schema import SIGNAL_COLUMNS

    plt = _pyplot()
    rng = np.random.default_rng(cfg.seed)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), sharey=True)
    axes = np.atleast_1d(axes)
    t = np.arange(len(SIGNAL_COLUMNS)) / cfg.data.fs
    for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
        sub = df[df["label"] == i]
        n_shown = min(cfg.report.examples_per_class, len(sub))
        for j in rng.choice(len(sub), size=n_shown, replace=False):
            ax.plot(t, sub.iloc[j][SIGNAL_COLUMNS].to_numpy(dtype=float), lw=0.9)
        ax.set_title(f"{name} (n={len(sub)})", fontsize=10)
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("normalised amplitude")
    fig.tight_layout()
    path = cfg.path("outputs") / "figures" / "data" / f"examples-{task}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
