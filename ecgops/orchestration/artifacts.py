"""What the flows publish: markdown artifacts and the links between Prefect and MLflow runs.

Metrics tables, validation outcomes, registry decisions (markdown artifacts of the flow or task
run) and flow-run tags ``mlflow_run:<id>`` (MLflow runs carry ``prefect_flow_run_id`` the other
way). :func:`as_plain` gives JSON views of result objects for the persisted task results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.errors import ValidationFailed
from ecgops.orchestration import timing
from ecgops.orchestration.concurrency import Outcome

logger = logging.getLogger(__name__)

METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")


def metrics_table_markdown(
    records: Sequence[Mapping[str, Any]], failures: Sequence[Outcome] = (), title: str = "Metrics"
) -> str:
    """A markdown table of metrics records (docs/architecture.md's metrics JSON).

    Args:
        records: metrics records (``task, scheme, name, val, test, timing, mlflow_run_id``)
            or training summaries (``run_id``; pretraining: ``method``).
        failures: failed calls, listed under the table.
        title: heading.

    Returns:
        Markdown text: one row per record, sorted by task, scheme and validation score.
    """
    head = ["task", "scheme", "model", "val bal. acc."]
    head += [f"test {c.replace('_', ' ')}" for c in METRIC_COLUMNS]
    head += ["fit s", "MLflow run"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = sorted(
        records,
        key=lambda r: (
            str(r.get("task")),
            str(r.get("scheme")),
            -_num((r.get("val") or {}).get("balanced_accuracy")),
        ),
    )
    for r in rows:
        test = r.get("test") or {}
        cells = [
            str(r.get("task", "")),
            str(r.get("scheme", "")),
            str(r.get("name") or (f"pretrain-{r['method']}" if r.get("method") else "")),
            fmt((r.get("val") or {}).get("balanced_accuracy")),
            *(fmt(test.get(c)) for c in METRIC_COLUMNS),
            fmt((r.get("timing") or {}).get("fit_seconds"), 1),
            f"`{_run_id(r)}`" if _run_id(r) else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not rows:
        lines.append("| " + " | ".join(["(none)"] + [""] * (len(head) - 1)) + " |")
    if failures:
        lines += ["", f"**{len(failures)} failed:**", ""]
        lines += [f"- `{o.label}`: {o.error}" for o in failures]
    return "\n".join(lines) + "\n"


def _run_id(record: Mapping[str, Any]) -> str | None:
    """A record's MLflow run id (``mlflow_run_id`` in metrics JSON, ``run_id`` in summaries)."""
    return record.get("mlflow_run_id") or record.get("run_id")


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("-inf")


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals (empty for None, the text for non-numbers)."""
    if value is None:
        return ""
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def validation_markdown(task: str, report: Any) -> str:
    """Markdown for a validation outcome: a ``ValidationReport`` or a ``ValidationFailed``.

    Args:
        task: ``ptb`` or ``mitbih``.
        report: the report of a passed validation, or the exception of a failed one.

    Returns:
        Markdown text naming the file, the outcome, the failed expectations (with example
        rows, as the validator wrote them) and where the GX result and data docs are.
    """
    if isinstance(report, ValidationFailed):
        lines = [f"# Validation FAILED: {task}", "", f"**File:** `{report.path}`", ""]
        lines += ["**Failed expectations:**", ""]
        lines += [f"- {failure}" for failure in report.failures]
        if report.report:
            lines += ["", f"**GX result:** `{report.report}`"]
        lines += ["", "Nothing was written, trained or registered from this table."]
        return "\n".join(lines) + "\n"
    counts = getattr(report, "class_counts", {}) or {}
    lines = [
        f"# Validation passed: {task}",
        "",
        f"**File:** `{getattr(report, 'source', '')}`  ",
        f"**Rows:** {getattr(report, 'n_rows', '')}",
        "",
        "| label | rows |",
        "|---|---|",
        *(f"| {label} | {n} |" for label, n in sorted(counts.items(), key=lambda kv: str(kv[0]))),
    ]
    for name, attr in (("GX result", "result_path"), ("Data docs", "docs_path")):
        if getattr(report, attr, None):
            lines += ["", f"**{name}:** `{getattr(report, attr)}`"]
    return "\n".join(lines) + "\n"


@contextmanager
def validation_artifact(task: str) -> Iterator[None]:
    """On :class:`ValidationFailed`, publish the failure as a markdown artifact, then re-raise."""
    try:
        yield
    except ValidationFailed as exc:
        publish_markdown(
            validation_markdown(task, exc),
            key=artifact_key("validation", task),
            description=f"Great Expectations validation of the {task} beat table FAILED",
        )
        raise


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) from its parts."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def publish_markdown(markdown: str, key: str, description: str) -> None:
    """Attach a markdown artifact to the current flow or task run (no-op outside a run)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    create_markdown_artifact(markdown=markdown, key=key, description=description)


def mlflow_run_ids(records: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """The MLflow run ids found in metrics records (in order, no duplicates)."""
    ids: list[str] = []
    for record in records:
        run_id = _run_id(record or {})
        if run_id and run_id not in ids:
            ids.append(str(run_id))
    return ids


def link_mlflow_runs(run_ids: Iterable[str]) -> list[str]:
    """Tag the current flow run with ``mlflow_run:<id>`` for each MLflow run it produced.

    The other direction is automatic: ecgops.tracking tags every MLflow run started inside a
    flow run with ``prefect_flow_run_id``.

    Returns:
        The tags added (empty outside a flow run).
    """
    from prefect import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    tags = [f"mlflow_run:{r}" for r in run_ids]
    if not run_id or not tags:
        return []
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(run_id)
        merged = list(dict.fromkeys([*(current.tags or []), *tags]))
        client.update_flow_run(run_id, tags=merged)
    return tags


def publish_metrics(outcomes: Sequence[Outcome], key: str, title: str) -> list[dict[str, Any]]:
    """Publish a flow's metrics table artifact and link the flow run to its MLflow runs.

    Args:
        outcomes: outcomes of training calls (values: metrics records).
        key: artifact key.
        title: table heading.

    Returns:
        The metrics records of the calls that completed.
    """
    records = [o.value for o in outcomes if o.ok and isinstance(o.value, Mapping)]
    failures = [o for o in outcomes if not o.ok]
    publish_markdown(metrics_table_markdown(records, failures, title), key=key, description=title)
    link_mlflow_runs(mlflow_run_ids(records))
    return [dict(r) for r in records]


def model_version_summary(version: Any) -> dict[str, Any]:
    """The facts of a registered MLflow model version, as plain JSON."""
    if isinstance(version, Mapping):
        return dict(version)
    return {
        "name": getattr(version, "name", None),
        "version": str(getattr(version, "version", "")),
        "run_id": getattr(version, "run_id", None),
        "aliases": list(getattr(version, "aliases", None) or []),
        "source": getattr(version, "source", None),
    }


def registry_markdown(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table of registered challengers and the gate's decisions, one row per task."""
    lines = [
        "# Registry",
        "",
        "| task | model | version | MLflow run | decision |",
        "|---|---|---|---|---|",
    ]
    for task, entry in summary.items():
        version = entry.get("challenger") or {}
        decision = entry.get("decision")
        lines.append(
            f"| {task} | {version.get('name', '(none registered)')} | {version.get('version', '')}"
            f" | {version.get('run_id') or ''} | {_decision_text(decision)} |"
        )
    return "\n".join(lines) + "\n"


def _decision_text(decision: Any) -> str:
    if decision is None:
        return "gate not run"
    if not isinstance(decision, Mapping):
        return str(decision)
    verdict = next(
        (f"{k}={decision[k]}" for k in ("action", "promoted", "accepted") if k in decision),
        "",
    )
    reason = next((str(decision[k]) for k in ("reason", "message", "reasons") if k in decision), "")
    text = "; ".join(part for part in (verdict, reason) if part) or json.dumps(
        decision, default=str
    )
    return text.replace("|", "/").replace("\n", " ")


def as_plain(obj: Any) -> Any:
    """A JSON-able view of a result object (dataclass, pydantic model, MLflow entity, Path)."""
    import dataclasses

    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): as_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [as_plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return as_plain(obj.model_dump(mode="json"))
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    public = (
        {k: v for k, v in vars(obj).items() if not k.startswith("__")}
        if hasattr(obj, "__dict__")
        else {}
    )
    if public:
        return {k.lstrip("_"): as_plain(v) for k, v in public.items()}
    return str(obj)


# ---- timings ------------------------------------------------------------------------------
@contextmanager
def timings_collected(cfg: Config, name: str = "pipeline") -> Iterator[None]:
    """Time every task call of the block afresh, then :func:`publish_timings` (also on failure).

    The JSON file is rewritten after every finished call, so a run that is cut off leaves the
    times of what it finished.

    Args:
        cfg: configuration.
        name: what is timed (file and artifact name).
    """
    timing.reset(on_note=lambda: timing.write_file(cfg, name))
    try:
        yield
    finally:
        publish_timings(cfg, name)
        timing.reset()


def publish_timings(cfg: Config, name: str = "pipeline") -> list[dict[str, Any]]:
    """Write the records so far: JSON file, markdown artifact, MLflow tags (never raises).

    Args:
        cfg: configuration (where ``outputs/timings`` is, the tracking URI).
        name: the file's and artifact's name (``pipeline``).

    Returns:
        The records.
    """
    rows = timing.records()
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("file", lambda: timing.write_file(cfg, name)),
        (
            "artifact",
            lambda: publish_markdown(
                timing.timings_markdown(rows),
                key=artifact_key(name, "timings"),
                description=f"Wall and CPU time per task run of the {name}",
            ),
        ),
        ("MLflow tags", lambda: timing.tag_mlflow_runs(cfg, rows)),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - timings never fail the pipeline
            logger.warning("timings %s not written: %s", what, exc)
    return rows
