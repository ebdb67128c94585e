"""Figures for evaluation: confusion matrix, ROC and PR curves, reliability diagrams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, class_names: list[str], title: str, path: Path) -> Path:
    """Confusion matrix with counts and row-normalised shading."""
    plt = _pyplot()
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.1 * len(class_names) + 2))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{cm[i, j]}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    fig.colorbar(im, ax=ax, label="share of true class")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_curves(
    rows: list[dict[str, float | str]],
    x: str,
    y: str,
    title: str,
    path: Path,
    diagonal: bool = False,
) -> Path:
    """One line per class from curve rows (ROC: fpr/tpr, PR: recall/precision)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    classes = list(dict.fromkeys(r["class"] for r in rows))
    for c in classes:
        pts = [r for r in rows if r["class"] == c]
        ax.plot([p[x] for p in pts], [p[y] for p in pts], label=str(c))
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    labels = {
        "fpr": "false positive rate",
        "tpr": "true positive rate",
        "recall": "recall",
        "precision": "precision",
    }
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(labels.get(y, y))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if classes:
        ax.legend(title="class", fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_reliability(
    y_true: np.ndarray, proba: np.ndarray, title: str, path: Path, n_bins: int = 10
) -> Path:
    """Reliability diagram of the top-class confidence, with the bin counts."""
    plt = _pyplot()
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    centers, accs, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            centers.append(conf[sel].mean())
            accs.append(correct[sel].mean())
            counts.append(int(sel.sum()))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
    ax.plot(centers, accs, marker="o", label="model")
    for cx, cy, n in zip(centers, accs, counts, strict=True):
        ax.annotate(
            str(n), (cx, cy), textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center"
        )
    _reliability_axes(ax, title)
    return _save(fig, path)


def plot_reliability_comparison(report: dict[str, Any], title: str, path: Path) -> Path:
    """Reliability diagram before and after calibration, from one part's calibration report.

    Args:
        report: a part of :func:`ecgops.evaluation.calibration.calibration_report`
            (``bins_before``, ``bins_after``, ``ece_before``, ``ece_after``).
        title: figure title.
        path: PNG file to write.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
    for key, label in (("before", "uncalibrated"), ("after", "calibrated")):
        bins = report[f"bins_{key}"]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{label} (ECE {report[f'ece_{key}']:.3f})",
        )
    _reliability_axes(ax, title)
    return _save(fig, path)


def _reliability_axes(ax, title: str) -> None:
    """Labels, limits, grid, legend and title of a reliability diagram."""
    ax.set_xlabel("mean predicted confidence")
    ax.set_ylabel("observed accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
