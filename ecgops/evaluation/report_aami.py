"""The report's AAMI table: per-class Se and +P of N, S, V, F per MIT-BIH model on new
patients (the DS1 → DS2 inter-record split), beside the published DS1 → DS2 results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgops.evaluation.metrics import AAMI_CLASSES, aami_from_confusion
from ecgops.evaluation.report_format import (
    NEW_PATIENTS,
    Section,
    fmt,
    md_table,
    published_reference,
    task_records,
)
from ecgops.evaluation.results import AAMI_TASK

NOTE = (
    "New patients: the MIT-BIH patient split is the inter-record DS1 → DS2 split of de Chazal "
    "et al. (2004): models train and validate on DS1 records (the sealed gate records "
    "excluded) and are tested on the whole of DS2; the paced records 102, 104, 107 and 217 are "
    "in neither. Records 201 (DS1) and 202 (DS2) come from one subject, so the split is "
    "inter-record, not strictly inter-patient. As in the literature, beats annotated Q are left "
    "out of the 4-class figures; an N, S, V or F beat the model predicts Q stays in, as a miss of "
    "its class. Se = sensitivity, +P = positive predictivity, mean Se = the 4-class balanced "
    "accuracy, acc = accuracy over N, S, V, F beats. Published figures are quoted from the "
    "papers (their own features and models), for reference."
)
CONTEXT_KEY = "context_columns"


def aami_of(record: dict[str, Any], class_names: list[str], part: str = "test") -> dict | None:
    """A record's AAMI figures on a part: its ``aami`` entry, else computed from its test
    confusion matrix (records written before the entry existed).

    Args:
        record: a MIT-BIH metrics record.
        class_names: the task's class names.
        part: ``test`` or ``val``.

    Returns:
        :func:`ecgops.evaluation.metrics.aami_from_confusion` figures, or None.
    """
    entry = (record.get("aami") or {}).get(part)
    if entry:
        return entry
    cm = record.get("confusion_matrix")
    if part != "test" or cm is None:
        return None
    cm = np.asarray(cm)
    return aami_from_confusion(cm, class_names) if cm.shape == (len(class_names),) * 2 else None


def _context(record: dict[str, Any]) -> str:
    """What rhythm context the model used (and whether it looked ahead, when recorded)."""
    columns = record.get(CONTEXT_KEY)
    if not columns:
        return "none"
    ahead = record.get("look_ahead")
    suffix = "" if ahead is None else (", look-ahead" if ahead else ", no look-ahead")
    return f"RR ({len(columns)}{suffix})"


def aami_row(figures: dict[str, Any], five_class_bal_acc: Any) -> list[str]:
    """The figure cells of one AAMI table row: Se and +P per class, mean Se, acc, 5-class."""
    cells = []
    for c in AAMI_CLASSES:
        entry = figures.get(c) or {}
        cells += [fmt(entry.get("sensitivity")), fmt(entry.get("ppv"))]
    return cells + [
        fmt(figures.get("mean_sensitivity")),
        fmt(figures.get("accuracy")),
        fmt(five_class_bal_acc),
    ]


def aami_section(records: list[dict[str, Any]], class_names: list[str]) -> Section:
    """Per MIT-BIH model on the patient split: AAMI figures on DS2, then the published ones.

    Args:
        records: metrics records.
        class_names: MIT-BIH class names (N, S, V, F, Q).

    Returns:
        The section (a note when no MIT-BIH patient-split model was run).
    """
    header = ["model", "context"]
    for c in AAMI_CLASSES:
        header += [f"{c} Se", f"{c} +P"]
    header += ["mean Se", "acc", "5-class bal acc"]
    rows = []
    for r in task_records(records, AAMI_TASK, NEW_PATIENTS):
        figures = aami_of(r, class_names)
        if figures is None:
            continue
        five = (figures.get("five_class") or {}).get("balanced_accuracy")
        rows.append([f"`{r['name']}`", _context(r)] + aami_row(figures, five))
    for pub in published_reference(AAMI_TASK):
        rows.append([f"_{pub['source']}_", "published"] + aami_row(pub, None))
    title = "MIT-BIH on new patients: AAMI classes (DS1 → DS2)"
    if not rows:
        return Section(title, "_No MIT-BIH model was run._", anchor="aami")
    return Section(title, NOTE + "\n\n" + md_table(header, rows), anchor="aami")
