"""The report's detail sections, after the summary: per-model tables per task and split,
curves and calibration of the best models, figure galleries, data, timings and provenance.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from ecgops.config import Config
from ecgops.evaluation.report_charts import example_beats_figure
from ecgops.evaluation.report_format import (
    LIKE_FOR_LIKE,
    METRIC_COLUMNS,
    SHORT,
    Section,
    best_by_validation,
    fmt,
    md_table,
    rate,
    study_reference,
    task_records,
)

SCHEME_NOTES = {
    LIKE_FOR_LIKE: "Random beat split, the study's scheme: a patient's beats can sit in both "
    "training and test. Study figures: Kaggle data, random beat split; our PTB is a PTB-XL "
    "subset (MI the minority), so the Δ column is a reference, not a pass mark.",
    "patient": "Patient split: new patients. PTB: no patient in two parts. MIT-BIH: the "
    "inter-record DS1 → DS2 split (records 201 and 202 are one subject). The study had no such "
    "split, so no study column here.",
}


def _profiles(records: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({str(r.get("profile", "?")) for r in records}))


def results_table(records: list[dict[str, Any]], task: str, scheme: str) -> str:
    """The per-model table of one task and split; on the beat split, the study's figure and the
    difference, labelled with the profile our runs used.

    Args:
        records: metrics records.
        task, scheme: which models.

    Returns:
        The Markdown table (a note when no model was run).
    """
    chosen = task_records(records, task, scheme)
    if not chosen:
        return "_No models were run for this task and split._"
    with_study = scheme == LIKE_FOR_LIKE
    ref = study_reference().get(task, {}).get(LIKE_FOR_LIKE, {})
    header = ["model", "family"] + [SHORT[m] for m in METRIC_COLUMNS]
    has_cv = any(r.get("cv") for r in chosen)
    if has_cv:
        header.append("bal acc, grouped CV (mean ± std)")
    if with_study:
        header += ["study bal acc", f"Δ bal acc (ours, {_profiles(chosen)} profile)"]
    header += ["train s", "infer beats/s", "commit", "data"]
    rows = []
    for r in chosen:
        test = r.get("test", {})
        row = [f"`{r['name']}`", r.get("family", "")] + [fmt(test.get(m)) for m in METRIC_COLUMNS]
        if has_cv:
            cv = r.get("cv") or {}
            mean, std = cv.get("balanced_accuracy_mean"), cv.get("balanced_accuracy_std")
            row.append(f"{fmt(mean)} ± {fmt(std)} ({cv.get('folds', '?')} folds)" if cv else "–")
        if with_study:
            study = ref.get(r["name"], {}).get("balanced_accuracy")
            bal = test.get("balanced_accuracy")
            row.append(fmt(study))
            row.append(
                f"{float(bal) - study:+.3f}" if study is not None and bal is not None else "–"
            )
        timing = r.get("timing", {})
        row += [fmt(timing.get("fit_seconds"), 1), rate(timing.get("predict_beats_per_s"))]
        row += [str(r.get("git_commit", "?"))[:8], str(r.get("data_version", "?"))[:8]]
        rows.append(row)
    return md_table(header, rows)


def results_sections(cfg: Config, records: list[dict[str, Any]]) -> list[Section]:
    """One detailed per-model table per task and split."""
    return [
        Section(
            f"Results: {task}, {scheme} split",
            SCHEME_NOTES.get(scheme, "") + "\n\n" + results_table(records, task, scheme),
            anchor=f"results-{task}-{scheme}",
        )
        for task in cfg.pipeline.tasks
        for scheme in cfg.splits.schemes
    ]


def data_section(cfg: Config) -> Section:
    """Beats per class per dataset and split, and example beats per class."""
    parts, figures = [], []
    for task in cfg.pipeline.tasks:
        table = cfg.path("processed") / f"{task}.parquet"
        if not table.exists():
            continue
        names = cfg.class_names(task)
        df = pd.read_parquet(table)

        def counts(sub: pd.DataFrame, names: list[str] = names) -> list[str]:
            per_class = [str(int((sub["label"] == i).sum())) for i in range(len(names))]
            return per_class + [str(len(sub)), str(sub["patient"].nunique())]

        rows = [["all"] + counts(df)]
        split_file = cfg.path("splits") / f"{task}.parquet"
        if split_file.exists():
            splits = pd.read_parquet(split_file)
            for scheme in cfg.splits.schemes:
                if scheme not in splits.columns:
                    continue
                for part in ("train", "val", "test", "gate"):
                    idx = splits.loc[splits[scheme] == part, "row"].to_numpy()
                    if len(idx):
                        rows.append([f"{scheme} / {part}"] + counts(df.iloc[idx]))
        header = ["part"] + names + ["total", "patients"]
        rel = table.relative_to(cfg.root) if table.is_relative_to(cfg.root) else table
        parts.append(f"**{task}** (source table `{rel}`)\n\n" + md_table(header, rows))
        figures.append(
            (f"Example beats per class: {task}", example_beats_figure(cfg, task, df, names))
        )
    return Section("Data", "\n\n".join(parts) or "_No processed data found._", figures)


def _figure(cfg: Config, record: dict[str, Any], name: str) -> Path | None:
    root = cfg.path("outputs") / "figures"
    path = root / record["task"] / record["scheme"] / record["name"] / name
    return path if path.exists() else None


def curves_section(cfg: Config, records: list[dict[str, Any]]) -> Section:
    """ROC, PR, confusion and calibration of the best model (by validation) per task and split."""
    figures, lines = [], []
    for task in cfg.pipeline.tasks:
        for scheme in cfg.splits.schemes:
            best = best_by_validation(records, task, scheme)
            if best is None:
                continue
            lines.append(
                f"- **{task} / {scheme}**: best by validation balanced accuracy is "
                f"`{best['name']}` (test ECE {fmt(best['test'].get('ece'))})."
            )
            for fig in ("roc.png", "pr.png", "confusion.png", "calibration.png"):
                path = _figure(cfg, best, fig)
                if path:
                    figures.append((f"{task} / {scheme} / {best['name']}: {fig[:-4]}", path))
    return Section("Curves of the best models", "\n".join(lines), figures)


def calibration_section(cfg: Config, records: list[dict[str, Any]]) -> Section:
    """Test ECE and Brier score before -> after calibration, per task x scheme x model.

    Args:
        cfg: configuration (tasks, schemes and the figures folder).
        records: metrics records (see :mod:`ecgops.evaluation.calibration_report`).

    Returns:
        The section, with the before/after reliability diagram of the best model per task and
        split (a note when no record has a calibration entry).
    """
    from ecgops.evaluation.calibration_report import HEADER, NOTE, calibration_rows

    rows = calibration_rows(records)
    if not rows:
        return Section("Calibration", "_No calibration recorded._")
    figures = []
    for task in cfg.pipeline.tasks:
        for scheme in cfg.splits.schemes:
            best = best_by_validation(records, task, scheme)
            path = _figure(cfg, best, "calibration_before_after.png") if best else None
            if path:
                figures.append((f"{task} / {scheme} / {best['name']}: before/after", path))
    return Section("Calibration", NOTE + "\n\n" + md_table(HEADER, rows), figures)


def gallery_section(cfg: Config, title: str, pattern: str, limit: int = 8) -> Section:
    """Figures matching a glob under outputs/figures (attention, embeddings, training curves)."""
    root = cfg.path("outputs") / "figures"
    paths = sorted(root.glob(pattern))[:limit] if root.exists() else []
    figs = [(str(p.relative_to(root)), p) for p in paths]
    return Section(title, "" if figs else "_None produced in this run._", figs)


def timings_section(cfg: Config) -> Section | None:
    """Where the time goes: wall and CPU seconds per stage of the last pipeline run.

    Args:
        cfg: configuration (``outputs/timings/pipeline.json``, written by the pipeline flow).

    Returns:
        The section, or None when no pipeline run recorded its timings.

    Raises:
        DataError: the timings file is not a timings record.
    """
    from ecgops.errors import DataError
    from ecgops.paths import timings_file

    path = timings_file(cfg)
    if not path.exists():
        return None
    try:
        runs = json.loads(path.read_text()).get("runs", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DataError(path, f"not a timings record: {exc}") from exc
    totals: dict[str, list[float]] = {}  # stage -> [calls, cached, wall s, cpu s]
    for r in runs:
        t = totals.setdefault(str(r.get("stage")), [0, 0, 0.0, 0.0])
        t[0] += 1
        t[1] += bool(r.get("cached"))
        t[2] += r.get("wall_s") or 0.0
        t[3] += r.get("cpu_s") or 0.0
    rows = [
        [stage, str(int(t[0])), str(int(t[1])), fmt(t[2], 1), fmt(t[3], 1)]
        for stage, t in sorted(totals.items(), key=lambda kv: -kv[1][2])
    ]
    note = (
        "Task runs of the last `ecgops pipeline` run, summed per stage (per call: the "
        "`pipeline-timings` Prefect artifact and `outputs/timings/pipeline.json`). A `track` "
        "is a whole training track and includes its trainings; cpu s is the process's CPU "
        "during each call, shared by the calls running beside it."
    )
    header = ["stage", "calls", "cached", "wall s", "cpu s"]
    return Section("Where the time goes", note + "\n\n" + md_table(header, rows))


def provenance_section(cfg: Config, records: list[dict[str, Any]]) -> Section:
    """Git commits, data versions, profile and machine behind the numbers."""
    commits = sorted({str(r.get("git_commit")) for r in records})
    data = sorted({f"{r['task']}: {r.get('data_version')}" for r in records})
    profiles = sorted({str(r.get("profile")) for r in records})
    lines = [
        f"- git commits: {', '.join(f'`{c}`' for c in commits) or '–'}",
        f"- data versions (md5 of the beat tables, as in dvc.lock): "
        f"{', '.join(f'`{d}`' for d in data) or '–'}",
        f"- profiles: {', '.join(profiles) or '–'}; seed {cfg.seed}",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "- params: `params.yaml` at that commit (resolved per section in `outputs/params/`)",
    ]
    return Section("Provenance", "\n".join(lines), anchor="provenance")
