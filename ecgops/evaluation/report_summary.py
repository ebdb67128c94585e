"""The report's opening: per task, the champion's figures on new patients, on the sealed gate
set (with bootstrap intervals) and on the study's beat split, beside the study's and the
published figures; then one chart of every model on both splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecgops.evaluation.report_aami import aami_of
from ecgops.evaluation.report_champions import Champion, record_of
from ecgops.evaluation.report_format import (
    LIKE_FOR_LIKE,
    NEW_PATIENTS,
    Section,
    fmt,
    md_table,
    published_reference,
    study_reference,
)
from ecgops.evaluation.results import AAMI_TASK

BINARY_COLUMNS = {
    "balanced_accuracy": "bal acc",
    "accuracy": "acc",
    "sensitivity": "Se ({positive})",
    "specificity": "Sp",
    "auroc": "AUROC",
}
AAMI_COLUMNS = {
    "mean_sensitivity": "mean Se (N,S,V,F)",
    "accuracy": "acc (N,S,V,F)",
    "S_sensitivity": "S Se",
    "V_sensitivity": "V Se",
    "balanced_accuracy_5class": "5-class bal acc",
}
GATE_KEYS = {AAMI_TASK: {"balanced_accuracy": "balanced_accuracy_5class"}}
"""Gate metrics (computed over all classes) -> summary column, where the names differ."""
GATE_SHOWN = {AAMI_TASK: ("balanced_accuracy",)}
"""Gate metrics a task's summary shows (default: those with a summary column)."""


def columns(task: str, class_names: list[str]) -> dict[str, str]:
    """Figure key -> column header of a task's summary table."""
    if task == AAMI_TASK:
        return dict(AAMI_COLUMNS)
    return {k: v.format(positive=class_names[-1]) for k, v in BINARY_COLUMNS.items()}


def record_figures(task: str, record: dict[str, Any], class_names: list[str]) -> dict[str, Any]:
    """The summary figures of a metrics record's test part.

    Args:
        task: the task.
        record: its metrics record.
        class_names: the task's class names.

    Returns:
        MIT-BIH: AAMI mean Se, accuracy over N, S, V, F, S and V Se, 5-class balanced accuracy.
        Binary tasks: balanced accuracy, accuracy, Se and Sp (from the confusion matrix, the
        last class positive), AUROC.
    """
    test = record.get("test") or {}
    if task == AAMI_TASK:
        a = aami_of(record, class_names) or {}
        return {
            "mean_sensitivity": a.get("mean_sensitivity"),
            "accuracy": a.get("accuracy"),
            "S_sensitivity": (a.get("S") or {}).get("sensitivity"),
            "V_sensitivity": (a.get("V") or {}).get("sensitivity"),
            "balanced_accuracy_5class": test.get("balanced_accuracy"),
        }
    out = {k: test.get(k) for k in ("balanced_accuracy", "accuracy", "auroc")}
    cm = np.asarray(record.get("confusion_matrix") or [])
    if cm.shape == (2, 2):
        out["sensitivity"] = cm[1, 1] / cm[1].sum() if cm[1].sum() else None
        out["specificity"] = cm[0, 0] / cm[0].sum() if cm[0].sum() else None
    return out


def published_figures(task: str, pub: dict[str, Any]) -> dict[str, Any]:
    """A publication's figures; binary balanced accuracy is (Se + Sp) / 2 when not quoted."""
    out = dict(pub)
    both = out.get("sensitivity") is not None and out.get("specificity") is not None
    if task != AAMI_TASK and "balanced_accuracy" not in out and both:
        out["balanced_accuracy"] = (out["sensitivity"] + out["specificity"]) / 2
    return out


def _cells(figures: dict[str, Any], keys: list[str]) -> list[str]:
    """Cells of the figure keys, each with its interval ``[low, high]`` when there is one."""
    cells = []
    for key in keys:
        cell = fmt(figures.get(key))
        if figures.get(f"{key}_low") is not None:
            cell += f" [{fmt(figures[f'{key}_low'])}, {fmt(figures[f'{key}_high'])}]"
        cells.append(cell)
    return cells


def gate_figures(task: str, champion: Champion) -> dict[str, Any]:
    """The champion's gate-set figures under the summary's column keys (intervals kept)."""
    rename = GATE_KEYS.get(task, {})
    shown = GATE_SHOWN.get(task)
    out = {}
    for key, value in champion.gate.items():
        base = key.removesuffix("_low").removesuffix("_high")
        if shown is not None and base not in shown:
            continue
        out[rename.get(base, base) + key[len(base) :]] = value
    return out


def _data_label(task: str, record: dict[str, Any], scheme: str, champion: Champion) -> str:
    n = (record.get("n") or {}).get("test")
    beats = f", {n:,} beats" if isinstance(n, int) else ""
    if scheme == NEW_PATIENTS:
        where = "DS2, inter-record" if task == AAMI_TASK else "patient-split test"
        label = f"new patients ({where}{beats})"
    else:
        label = f"random beat split test{beats}"
    if scheme != champion.scheme:
        label += f"; the configuration's {scheme}-split run"
    return label


def champion_rows(
    task: str, records: list[dict[str, Any]], champion: Champion, keys: list[str], names: list[str]
) -> list[list[str]]:
    """The champion's rows: new patients, gate set (with intervals), beat split."""
    label = f"`{champion.name}`" + (f" ({champion.kind})" if champion.kind else "")
    rows = []
    new = record_of(records, champion, NEW_PATIENTS)
    if new is not None:
        figures = record_figures(task, new, names)
        rows.append(["**ecgops champion**", label, _data_label(task, new, NEW_PATIENTS, champion)])
        rows[-1] += _cells(figures, keys)
    if champion.gate:
        gate = f"sealed gate set ({champion.gate_note})" if champion.gate_note else "gate set"
        rows.append(["ecgops champion", label, gate] + _cells(gate_figures(task, champion), keys))
    beat = record_of(records, champion, LIKE_FOR_LIKE)
    if beat is not None:
        rows.append(["ecgops champion", label, _data_label(task, beat, LIKE_FOR_LIKE, champion)])
        rows[-1] += _cells(record_figures(task, beat, names), keys)
    return rows


def reference_rows(task: str, champions: list[Champion], keys: list[str]) -> list[list[str]]:
    """The study's figure for each champion's configuration, then the published figures."""
    rows = []
    study = study_reference().get(task, {}).get(LIKE_FOR_LIKE, {})
    for name in dict.fromkeys(c.name for c in champions):
        if name in study:
            figures = dict(study[name])
            if task == AAMI_TASK:  # the study's MIT-BIH figures are over its 5 classes
                figures = {"balanced_accuracy_5class": figures.get("balanced_accuracy")}
            rows.append(["study", f"`{name}`", "Kaggle data, random beat split"])
            rows[-1] += _cells(figures, keys)
    for pub in published_reference(task):
        rows.append([f"_{pub['source']}_", "published", pub.get("data", "")])
        rows[-1] += _cells(published_figures(task, pub), keys)
    return rows


def summary_section(
    task: str,
    records: list[dict[str, Any]],
    champions: list[Champion],
    class_names: list[str],
    chart: Path | None,
) -> Section:
    """A task's summary: who the champion is, its figures beside the references, the chart.

    Args:
        task: the task.
        records: metrics records.
        champions: the task's champions (:func:`ecgops.evaluation.report_champions.champions`).
        class_names: the task's class names.
        chart: the task's model chart (or None).

    Returns:
        The section (anchor ``summary-{task}``).
    """
    cols = columns(task, class_names)
    keys = list(cols)
    figures = [(f"{task}: every model on both splits", chart)] if chart else []
    if not champions:
        text = "_No model of this task has validation figures yet: run `ecgops pipeline`._"
        return Section(f"Summary: {task}", text, figures, anchor=f"summary-{task}")
    lines = [
        f"- **{c.name}**"
        + (f" ({c.kind} model)" if c.kind else "")
        + f", trained on the {c.scheme} split: {c.source}."
        for c in champions
    ]
    rows = [r for c in champions for r in champion_rows(task, records, c, keys, class_names)]
    rows += reference_rows(task, champions, keys)
    note = (
        "The references were measured on other data and splits (see each row); only the study's "
        "beat-split figure is the same kind of split as ours. Gate-set intervals are bootstrap "
        "intervals over the gate's patients/records; test figures are point estimates."
    )
    table = md_table(["", "model", "data"] + list(cols.values()), rows)
    return Section(
        f"Summary: {task}",
        "\n".join(lines) + "\n\n" + table + "\n\n" + note,
        figures,
        anchor=f"summary-{task}",
    )
