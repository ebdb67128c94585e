"""The results report: every model beside the study's figures, generated from pipeline outputs.

``build_report(cfg)`` reads the metrics files (``outputs/metrics``), the data summaries, the
registry decisions and the figures the stages wrote, and produces ``reports/results.md`` (for
GitHub) and ``reports/results.html`` (self-contained: PNGs embedded). ``update_readme`` copies the
Markdown tables into the README between the ``results`` markers, so numbers are never typed.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ecgops.config import Config
from ecgops.evaluation.results import load_all_metrics
from ecgops.io import write_text

METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")
SHORT = {
    "accuracy": "acc",
    "balanced_accuracy": "bal acc",
    "macro_f1": "macro F1",
    "auroc": "AUROC",
    "auprc": "AUPRC",
}
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
FAMILY_ORDER = {"classical": 0, "deep": 1, "transfer": 2}
EXAMPLES_PER_CLASS = 3


@dataclass
class Section:
    """A titled block of Markdown with the figures it shows."""

    title: str
    markdown: str
    figures: list[tuple[str, Path]] = field(default_factory=list)


def study_reference() -> dict[str, Any]:
    """The study's published figures (see study_reference.yaml)."""
    text = resources.files("ecgops.evaluation").joinpath("study_reference.yaml").read_text()
    return yaml.safe_load(text)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if np.isnan(v):
        return "–"
    return f"{v:.{digits}f}"


def _rate(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{v:,.0f}" if not np.isnan(v) else "–"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(records: list[dict[str, Any]], task: str, scheme: str) -> str:
    """The results table of one task and split, with the study's figures and differences."""
    ref = study_reference().get(task, {}).get("beat", {})
    chosen = [r for r in records if r["task"] == task and r["scheme"] == scheme]
    chosen.sort(key=lambda r: (FAMILY_ORDER.get(r.get("family", ""), 9), r["name"]))
    if not chosen:
        return "_No models were run for this task and split._"
    header = ["model", "family"] + [SHORT[m] for m in METRIC_COLUMNS]
    has_cv = any(r.get("cv") for r in chosen)
    if has_cv:
        header.append("bal acc, grouped CV (mean ± std)")
    header += ["study bal acc", "Δ bal acc", "train s", "infer beats/s", "commit", "data"]
    rows = []
    for r in chosen:
        test = r.get("test", {})
        row = [f"`{r['name']}`", r.get("family", "")]
        row += [_fmt(test.get(m)) for m in METRIC_COLUMNS]
        if has_cv:
            cv = r.get("cv") or {}
            mean, std = cv.get("balanced_accuracy_mean"), cv.get("balanced_accuracy_std")
            row.append(f"{_fmt(mean)} ± {_fmt(std)} ({cv.get('folds', '?')} folds)" if cv else "–")
        study = ref.get(r["name"], {}).get("balanced_accuracy")
        row.append(_fmt(study))
        bal = test.get("balanced_accuracy")
        row.append(f"{float(bal) - study:+.3f}" if study is not None and bal is not None else "–")
        timing = r.get("timing", {})
        row.append(_fmt(timing.get("fit_seconds"), 1))
        row.append(_rate(timing.get("predict_beats_per_s")))
        row.append(str(r.get("git_commit", "?"))[:8])
        row.append(str(r.get("data_version", "?"))[:8])
        rows.append(row)
    return md_table(header, rows)


def data_section(cfg: Config) -> Section:
    """Beats per class per dataset and split, and example beats per class."""
    parts, figures = [], []
    for task in cfg.pipeline.tasks:
        table = cfg.path("processed") / f"{task}.parquet"
        if not table.exists():
            continue
        names = cfg.class_names(task)
        df = pd.read_parquet(table)
        header = ["part"] + names + ["total", "patients"]
        rows = [
            ["all"]
            + [str(int((df["label"] == i).sum())) for i in range(len(names))]
            + [str(len(df)), str(df["patient"].nunique())]
        ]
        split_file = cfg.path("splits") / f"{task}.parquet"
        if split_file.exists():
            splits = pd.read_parquet(split_file)
            for scheme in cfg.splits.schemes:
                if scheme not in splits.columns:
                    continue
                for part in ("train", "val", "test"):
                    rows_idx = splits.loc[splits[scheme] == part, "row"].to_numpy()
                    sub = df.iloc[rows_idx]
                    rows.append(
                        [f"{scheme} / {part}"]
                        + [str(int((sub["label"] == i).sum())) for i in range(len(names))]
                        + [str(len(sub)), str(sub["patient"].nunique())]
                    )
        parts.append(
            f"**{task}** (source table `{table.relative_to(cfg.root)}`)\n\n"
            + md_table(header, rows)
        )
        fig = _example_beats_figure(cfg, task, df, names)
        figures.append((f"Example beats per class: {task}", fig))
    return Section("Data", "\n\n".join(parts) or "_No processed data found._", figures)


def _example_beats_figure(cfg: Config, task: str, df: pd.DataFrame, names: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecgops.schema import SIGNAL_COLUMNS

    rng = np.random.default_rng(cfg.seed)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), sharey=True)
    axes = np.atleast_1d(axes)
    t = np.arange(len(SIGNAL_COLUMNS)) / cfg.data.fs
    for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
        sub = df[df["label"] == i]
        for j in rng.choice(len(sub), size=min(EXAMPLES_PER_CLASS, len(sub)), replace=False):
            ax.plot(t, sub.iloc[j][SIGNAL_COLUMNS].to_numpy(dtype=float), lw=0.9)
        ax.set_title(f"{name} (n={len(sub)})", fontsize=10)
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("normalised amplitude")
    fig.tight_layout()
    path = cfg.path("outputs") / "figures" / "data" / f"examples-{task}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _best(records: list[dict[str, Any]], task: str, scheme: str) -> dict[str, Any] | None:
    """Best model of a task/split by validation balanced accuracy (the selection metric)."""
    chosen = [
        r
        for r in records
        if r["task"] == task and r["scheme"] == scheme and not r["name"].startswith("probe-")
    ]
    if not chosen:
        return None
    return max(chosen, key=lambda r: (r.get("val") or r["test"]).get("balanced_accuracy", -1))


def _figure(cfg: Config, record: dict[str, Any], name: str) -> Path | None:
    path = (
        cfg.path("outputs") / "figures" / record["task"] / record["scheme"] / record["name"] / name
    )
    return path if path.exists() else None


def curves_section(cfg: Config, records: list[dict[str, Any]]) -> Section:
    """ROC, PR, confusion and calibration of the best model per task and split."""
    figures, lines = [], []
    for task in cfg.pipeline.tasks:
        for scheme in cfg.splits.schemes:
            best = _best(records, task, scheme)
            if best is None:
                continue
            ece = best["test"].get("ece")
            lines.append(
                f"- **{task} / {scheme}**: best by validation balanced accuracy is "
                f"`{best['name']}` (test ECE {_fmt(ece)})."
            )
            for fig in ("roc.png", "pr.png", "confusion.png", "calibration.png"):
                path = _figure(cfg, best, fig)
                if path:
                    figures.append((f"{task} / {scheme} / {best['name']}: {fig[:-4]}", path))
    return Section("Curves and calibration of the best models", "\n".join(lines), figures)


def champions_section(cfg: Config) -> Section:
    """Registry decisions written by the register/promote stage."""
    reg_dir = cfg.path("outputs") / "registry"
    lines = []
    for path in sorted(reg_dir.glob("*.json")) if reg_dir.exists() else []:
        info = json.loads(path.read_text())
        lines.append(
            f"- `{path.stem}`: "
            + ", ".join(
                f"{k}: {v}" for k, v in sorted(info.items()) if not isinstance(v, dict | list)
            )
        )
    return Section("Registry", "\n".join(lines) or "_No registry decisions recorded._")


def gallery_section(cfg: Config, title: str, pattern: str, limit: int = 8) -> Section:
    """Figures matching a glob under outputs/figures (attention, embeddings, training curves)."""
    root = cfg.path("outputs") / "figures"
    paths = sorted(root.glob(pattern))[:limit] if root.exists() else []
    figs = [(str(p.relative_to(root)), p) for p in paths]
    return Section(title, "" if figs else "_None produced in this run._", figs)


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
    return Section("Provenance", "\n".join(lines))


def build_sections(cfg: Config) -> list[Section]:
    """All report sections, in reading order."""
    records = load_all_metrics(cfg)
    sections = []
    for task in cfg.pipeline.tasks:
        for scheme in cfg.splits.schemes:
            note = (
                "Study figures: Kaggle data, random beat split. Our PTB is a PTB-XL subset "
                "(MI the minority): a reference, not a pass mark."
                if scheme == "beat"
                else "Patient split: no patient in two parts (the study had none); the study's "
                "beat-split figures are shown for contrast only."
            )
            sections.append(
                Section(
                    f"Results: {task}, {scheme} split",
                    note + "\n\n" + results_table(records, task, scheme),
                )
            )
    sections.append(champions_section(cfg))
    sections.append(curves_section(cfg, records))
    sections.append(
        gallery_section(cfg, "Transformer attention maps", "*/*/transformer/attention*.png")
    )
    sections.append(
        gallery_section(cfg, "Contrastive pretraining and embeddings", "*/*/*/*embedding*.png")
    )
    sections.append(gallery_section(cfg, "Training curves", "*/*/*/*curve*.png"))
    sections.append(data_section(cfg))
    sections.append(provenance_section(cfg, records))
    return sections


def render_markdown(sections: list[Section], figure_base: Path) -> str:
    """Markdown with relative links to the figures."""
    out = [
        "# ecgops results report",
        "",
        "Generated by `ecgops report` from the pipeline's own outputs; do not edit by hand.",
        "",
    ]
    for s in sections:
        out += [f"## {s.title}", "", s.markdown, ""]
        for caption, path in s.figures:
            rel = os.path.relpath(path, figure_base)
            out += [f"![{caption}]({rel})", ""]
    return "\n".join(out)


def render_html(sections: list[Section]) -> str:
    """Self-contained HTML: tables converted from Markdown, PNGs embedded as data URIs."""
    body = []
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body.append(_markdown_to_html(s.markdown))
        for caption, path in s.figures:
            data = base64.b64encode(path.read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
                f'{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
            )
    style = (
        "body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
        "figure{display:inline-block;margin:6px}img{max-width:600px}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ecgops results</title>"
        f"<style>{style}</style></head><body><h1>ecgops results report</h1>"
        + "\n".join(body)
        + "</body></html>"
    )


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"_([^_]+)_", r"<i>\1</i>", text) if text.startswith("_") else text


def _markdown_to_html(md: str) -> str:
    out, table, items = [], [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        if table:
            head, *rest = table
            out.append(
                "<table><tr>"
                + "".join(f"<th>{_inline(c)}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rest
                )
                + "</table>"
            )
            table = []
        if line.startswith("- "):
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    return "\n".join(out)


def update_readme(readme: Path, markdown: str) -> bool:
    """Replace the README's results block with ``markdown``; True when the file changed."""
    if not readme.exists():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{markdown.strip()}\n{README_END}{tail}"
    if new != text:
        write_text(new, readme)
        return True
    return False


def readme_summary(sections: list[Section]) -> str:
    """The README's results block: the result tables and a link to the full report."""
    out = [
        "## Results",
        "",
        "Generated by `ecgops report` from the pipeline's metrics files; the full report with "
        "curves, calibration, attention maps and embeddings is "
        "[reports/results.md](reports/results.md) (self-contained HTML: "
        "`reports/results.html`).",
        "",
    ]
    for s in sections:
        if s.title.startswith("Results:") or s.title == "Provenance":
            out += [f"### {s.title}", "", s.markdown, ""]
    return "\n".join(out)


def build_report(
    cfg: Config, out_dir: Path | None = None, readme: Path | None = None
) -> list[Path]:
    """Write the Markdown and HTML reports (and refresh the README block when given).

    Args:
        cfg: configuration.
        out_dir: where to write (default ``<root>/reports``).
        readme: README to update between the results markers (default ``<root>/README.md``
            when writing to the default location; pass a path to update another file).

    Returns:
        The written paths.
    """
    out_dir = out_dir or (cfg.root / "reports")
    sections = build_sections(cfg)
    md_path, html_path = out_dir / "results.md", out_dir / "results.html"
    fig_dir = out_dir / "figures"
    # The Markdown links figures copied beside it, so the committed report renders on GitHub.
    copied = []
    for s in sections:
        new_figs = []
        for caption, path in s.figures:
            rel = (
                path.relative_to(cfg.path("outputs") / "figures")
                if path.is_relative_to(cfg.path("outputs") / "figures")
                else Path(path.name)
            )
            target = fig_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            new_figs.append((caption, target))
            copied.append(target)
        s.figures = new_figs
    for stale in set(fig_dir.rglob("*.png")) - set(copied) if fig_dir.is_dir() else ():
        stale.unlink()  # a figure of an earlier report that this one no longer shows
    write_text(render_markdown(sections, out_dir), md_path)
    write_text(render_html(sections), html_path)
    written = [md_path, html_path]
    if readme is None and out_dir == cfg.root / "reports":
        readme = cfg.root / "README.md"
    if readme is not None and update_readme(readme, readme_summary(sections)):
        written.append(readme)
    return written
