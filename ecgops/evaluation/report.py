"""The results report: a summary per task a reader takes in at a glance, then the details,
generated from the pipeline's outputs.

``build_report(cfg)`` reads the metrics files (``outputs/metrics``), the registry (its
champions, when reachable) and decisions (``outputs/registry``), the data summaries and the
figures the stages wrote, and produces ``reports/results.md`` (for GitHub) and
``reports/results.html`` (self-contained: PNGs embedded). ``update_readme`` copies the summary
into the README between the ``results`` markers, so numbers are never typed.

Reading order: per task a summary (the champion on new patients, on the sealed gate set with
intervals and on the study's beat split, beside the study's and published figures; one chart
of every model on both splits), the MIT-BIH AAMI table beside the published DS1 → DS2 results,
the PTB multi-lead table (leads × model × beat or record level, beside the single-lead rows
and the published results), the registry decisions, then per-model tables, curves,
calibration, galleries, data, timings and provenance. The pieces live in ``report_*``
modules: ``report_format`` (sections, tables, reference figures), ``report_champions``,
``report_summary``, ``report_aami``, ``report_multilead``, ``report_registry``,
``report_charts``, ``report_sections`` (details) and ``report_html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.evaluation.report_aami import aami_section
from ecgops.evaluation.report_champions import champions
from ecgops.evaluation.report_charts import model_chart
from ecgops.evaluation.report_format import (
    Section,
    best_by_validation,
    md_table,
    study_reference,
)
from ecgops.evaluation.report_html import render_html, render_markdown
from ecgops.evaluation.report_multilead import BASE_TASK as MULTILEAD_BASE
from ecgops.evaluation.report_multilead import multilead_section
from ecgops.evaluation.report_registry import registry_section
from ecgops.evaluation.report_sections import (
    calibration_section,
    curves_section,
    data_section,
    gallery_section,
    provenance_section,
    results_sections,
    timings_section,
)
from ecgops.evaluation.report_summary import summary_section
from ecgops.evaluation.results import AAMI_TASK, load_all_metrics
from ecgops.io import write_text

__all__ = [
    "Section",
    "build_report",
    "build_sections",
    "calibration_section",
    "md_table",
    "readme_summary",
    "study_reference",
    "timings_section",
    "update_readme",
]

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
README_ANCHORS = ("summary-", "aami", "registry", "provenance")
"""Sections the README's results block repeats (by anchor prefix)."""


def _best(records: list[dict[str, Any]], task: str, scheme: str) -> dict[str, Any] | None:
    """Best model of a task/split by validation balanced accuracy (never by test)."""
    return best_by_validation(records, task, scheme)


def build_sections(cfg: Config) -> list[Section]:
    """All report sections, in reading order (summary first).

    Args:
        cfg: configuration.

    Returns:
        The sections.
    """
    records = load_all_metrics(cfg)
    sections = [
        summary_section(
            task,
            records,
            champions(cfg, records, task),
            cfg.class_names(task),
            model_chart(cfg, records, task),
        )
        for task in cfg.pipeline.tasks
    ]
    if AAMI_TASK in cfg.pipeline.tasks:
        sections.append(aami_section(records, cfg.class_names(AAMI_TASK)))
    if MULTILEAD_BASE in cfg.pipeline.tasks:
        sections.append(multilead_section(records))
    sections.append(registry_section(cfg))
    sections += results_sections(cfg, records)
    sections.append(curves_section(cfg, records))
    sections.append(calibration_section(cfg, records))
    sections.append(
        gallery_section(cfg, "Transformer attention maps", "*/*/transformer/attention*.png")
    )
    sections.append(
        gallery_section(cfg, "Contrastive pretraining and embeddings", "*/*/*/*embedding*.png")
    )
    sections.append(gallery_section(cfg, "Training curves", "*/*/*/*curve*.png"))
    sections.append(data_section(cfg))
    timings = timings_section(cfg)
    if timings is not None:
        sections.append(timings)
    sections.append(provenance_section(cfg, records))
    return sections


def update_readme(readme: Path, markdown: str) -> bool:
    """Replace the README's results block with ``markdown``.

    Args:
        readme: the README.
        markdown: the new block.

    Returns:
        True when the file changed (False: no file, no markers or nothing new).
    """
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
    """The README's results block: the summaries, the AAMI table, the registry decisions and
    the provenance, with a link to the full report.

    Args:
        sections: the report's sections.

    Returns:
        Markdown (figures left out: they live beside the report).
    """
    out = [
        "## Results",
        "",
        "Generated by `ecgops report` from the pipeline's metrics files; the full report with "
        "the per-model tables, the chart of every model on both splits, curves, calibration, "
        "attention maps and embeddings is [reports/results.md](reports/results.md) "
        "(self-contained HTML: `reports/results.html`).",
        "",
    ]
    for s in sections:
        if s.anchor.startswith(README_ANCHORS):
            out += [f"### {s.title}", "", s.markdown, ""]
    return "\n".join(out)


def _copy_figures(cfg: Config, sections: list[Section], fig_dir: Path) -> None:
    """Copy every figure beside the report (so the committed Markdown renders on GitHub),
    repoint the sections at the copies and remove copies an earlier report left."""
    root = cfg.path("outputs") / "figures"
    copied = []
    for s in sections:
        new_figs = []
        for caption, path in s.figures:
            rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
            target = fig_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            new_figs.append((caption, target))
            copied.append(target)
        s.figures = new_figs
    for stale in set(fig_dir.rglob("*.png")) - set(copied) if fig_dir.is_dir() else ():
        stale.unlink()


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
    _copy_figures(cfg, sections, out_dir / "figures")
    write_text(render_markdown(sections, out_dir), md_path)
    write_text(render_html(sections), html_path)
    written = [md_path, html_path]
    if readme is None and out_dir == cfg.root / "reports":
        readme = cfg.root / "README.md"
    if readme is not None and update_readme(readme, readme_summary(sections)):
        written.append(readme)
    return written
