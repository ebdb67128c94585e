"""The report's multi-lead table (issue 18): PTB on new patients, input (lead set) x model x
level (beat; record by the mean of beat probabilities; record by the learned rule; record by
the rule chosen on validation records), beside the study's single-lead rows and the published
results.

Multi-lead runs write ``outputs/metrics/ptb12/<scheme>/<net>-<leadset>.json`` (the nets) and
``<model>-features-<leadset>.json`` (the classical models on per-lead features,
:mod:`ecgops.training.multilead_classical`, shown as ``lgbm-features`` etc.): beat-level
figures in ``test`` and ``cv``, record-level ones in ``record`` (``mean``, ``learned``, the
selected rule's ``balanced_accuracy`` / ``auroc``, ``records``) and ``cv.record``
(:func:`ecgops.training.record_level.record_cv_summary`). The single-lead rows are the PTB
patient-split records (lead II beats of the study's table).
"""

from __future__ import annotations

import math
from typing import Any

from ecgops.evaluation.report_format import (
    NEW_PATIENTS,
    Section,
    fmt,
    md_table,
    published_reference,
    task_records,
)
from ecgops.evaluation.report_summary import published_figures
from ecgops.registry.client import MULTILEAD_TASKS

BASE_TASK = "ptb"
MULTILEAD_TASK = MULTILEAD_TASKS[BASE_TASK]
SINGLE_LEAD_INPUT = "lead II (study table)"
HEADER = [
    "input",
    "model",
    "level",
    "test n",
    "test bal acc",
    "test AUROC",
    "bal acc, grouped CV (mean ± std)",
    "AUROC, grouped CV (mean ± std)",
    "train s",
]
LEVELS = (
    ("record mean", "mean"),
    ("record learned", "learned"),
)
"""Record-level rows of a multi-lead run: label -> key of its ``record`` block (and the
``{key}_`` prefix of its ``cv.record`` figures)."""
CHOSEN = "record chosen on validation"
NOTE = (
    "PTB on new patients (patient split, no patient in two parts): the multi-lead nets "
    "(`ptb12` table, one set of R-peaks per record, each lead normalised on its own) and the "
    "classical models on per-lead features (`<model>-features`: the single-lead feature set "
    "of each lead, side by side) on the same patients as the study's single-lead models. "
    "Levels: *beat* = each beat's decision; *record mean* = the mean of the record's beat "
    "probabilities against a threshold fitted on validation records; *record learned* = a "
    "logistic regression on the record's beat probability statistics, fitted on validation "
    "records; *record chosen on validation* = whichever of the two won the cross-validation "
    "over validation records (the rule per fold in brackets). Test n counts beats (beat "
    "level) or records. Grouped CV: the grouped patient folds, mean ± std. Train s is the "
    "model's fit (for the classical models, on features extracted once per run: that "
    "extraction is timed apart); the record rules are fitted on its validation "
    "probabilities, in the same run. Published figures come from their papers' own data and "
    "splits: a reference, not a like-for-like comparison."
)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def mean_std(summary: dict[str, Any], key: str) -> str:
    """``mean ± std (k folds)`` of ``{key}_mean`` / ``{key}_std`` in a CV summary (``–`` when
    the mean is missing or not a number, e.g. a rule no fold could fit)."""
    mean = summary.get(f"{key}_mean")
    if not _finite(mean):
        return "–"
    return f"{fmt(mean)} ± {fmt(summary.get(f'{key}_std'))} ({summary.get('folds', '?')} folds)"


def _input_label(record: dict[str, Any]) -> str:
    """``lead set`` and its leads, e.g. ```all` (I, II, V1)``."""
    model, given = record.get("model") or {}, record.get("input") or {}
    lead_set = given.get("lead_set") or model.get("lead_set") or "?"
    leads = model.get("leads") or given.get("leads") or []
    return f"`{lead_set}` ({', '.join(leads)})" if leads else f"`{lead_set}`"


def _net(record: dict[str, Any]) -> str:
    """The model column: the net's arch, or ``{model}-{input}`` of a classical run."""
    model = record.get("model") or {}
    if record.get("family") == "classical" and model.get("name"):
        return f"`{model['name']}-{model.get('input', 'features')}`"
    return f"`{model.get('arch') or record['name']}`"


def _fit_s(record: dict[str, Any]) -> str:
    return fmt((record.get("timing") or {}).get("fit_seconds"), 1)


def beat_row(record: dict[str, Any], input_label: str, model: str) -> list[str]:
    """The beat-level row of a metrics record: test figures, grouped CV, training time."""
    test, cv = record.get("test") or {}, record.get("cv") or {}
    return [
        input_label,
        model,
        "beat",
        str((record.get("n") or {}).get("test", "–")),
        fmt(test.get("balanced_accuracy")),
        fmt(test.get("auroc")),
        mean_std(cv, "balanced_accuracy"),
        mean_std(cv, "auroc"),
        _fit_s(record),
    ]


def multilead_rows(record: dict[str, Any]) -> list[list[str]]:
    """The four rows of one multi-lead run: beat, record mean, record learned, record chosen.

    Args:
        record: a ``ptb12`` metrics record.

    Returns:
        Table rows (cells as in :data:`HEADER`); a level the run has no figures for shows
        ``–`` (e.g. no learned rule when the validation records held one class).
    """
    label, net = _input_label(record), _net(record)
    rows = [beat_row(record, label, net)]
    block = record.get("record") or {}
    cv = (record.get("cv") or {}).get("record") or {}
    n = str(block.get("records", "–"))
    for level, key in LEVELS:
        figures = block.get(key) or {}
        rows.append(
            [label, net, level, n]
            + [fmt(figures.get("balanced_accuracy")), fmt(figures.get("auroc"))]
            + [mean_std(cv, f"{key}_balanced_accuracy"), mean_std(cv, f"{key}_auroc")]
            + [_fit_s(record)]
        )
    chosen = f"{CHOSEN}: {block.get('selected', '?')}"
    if cv.get("selected"):
        chosen += f" (folds: {', '.join(cv['selected'])})"
    rows.append(
        [label, net, chosen, n]
        + [fmt(block.get("balanced_accuracy")), fmt(block.get("auroc"))]
        + [mean_std(cv, "balanced_accuracy"), mean_std(cv, "auroc")]
        + [_fit_s(record)]
    )
    return rows


def _lead_count(record: dict[str, Any]) -> int:
    return len((record.get("model") or {}).get("leads") or [])


def published_rows() -> list[list[str]]:
    """One row per PTB publication of study_reference.yaml (balanced accuracy from Se and Sp
    when the paper gives those)."""
    rows = []
    for pub in published_reference(BASE_TASK):
        figures = published_figures(BASE_TASK, pub)
        rows.append(
            [
                str(pub.get("leads", "–")),
                f"_{pub['source']}_ ({pub.get('data', '')})",
                "published",
                "–",
                fmt(figures.get("balanced_accuracy")),
                fmt(figures.get("auroc")),
                "–",
                "–",
                "–",
            ]
        )
    return rows


def multilead_section(records: list[dict[str, Any]], scheme: str = NEW_PATIENTS) -> Section:
    """Multi-lead runs (fewest leads first), the study's single-lead rows, then published ones.

    Args:
        records: metrics records (:func:`ecgops.evaluation.results.load_all_metrics`).
        scheme: the split (default the patient split).

    Returns:
        The section (anchor ``multilead``); a note says so when no multi-lead run was found.
    """
    multi = sorted(
        task_records(records, MULTILEAD_TASK, scheme),
        key=lambda r: (_lead_count(r), _input_label(r), r["name"]),
    )
    rows = [row for r in multi for row in multilead_rows(r)]
    for r in task_records(records, BASE_TASK, scheme):
        rows.append(beat_row(r, SINGLE_LEAD_INPUT, f"`{r['name']}`"))
    rows += published_rows()
    body = NOTE
    if not multi:
        body += (
            "\n\n_No multi-lead run found (`outputs/metrics/ptb12/"
            f"{scheme}/*.json`): `ecgops train deep --task ptb12 --leads NAME`, "
            "`ecgops train classical --task ptb12 --leads NAME`._"
        )
    title = "PTB on new patients: leads × model × beat or record level"
    return Section(title, body + "\n\n" + md_table(HEADER, rows), anchor="multilead")
