"""Running a beat table's expectation suite in Great Expectations, and reading its result.

:func:`_run_gx` builds the suite from its specification
(:mod:`ecgops.data.validation_suite`) in an ephemeral GX 1.x context, runs it through a
checkpoint and builds the data docs when a report folder is given; the rest turns the GX result
into statistics and one readable line per failed expectation, with example rows explained in
terms of the original columns. Great Expectations is imported lazily (it takes seconds).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.data.validation_columns import (
    ID_COLUMNS,
    _blank,
    _is_real_numeric,
    _padding,
    _signal_matrix,
)
from ecgops.io import atomic_path
from ecgops.schema import SIGNAL_COLUMNS

DOCS_DIR = "data_docs"
MAX_EXAMPLES = 5


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _run_gx(
    frame: pd.DataFrame,
    task: str,
    spec: list[tuple[str, dict[str, Any], str]],
    report_dir: Path | None,
) -> dict[str, Any]:
    """Run the suite on the frame in an ephemeral GX context; build data docs if asked."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(f"{task}-beats").add_dataframe_asset(task)
    batch = asset.add_batch_definition_whole_dataframe("table")
    suite = gx.ExpectationSuite(name=f"ecgops-{task}")
    for kind, kwargs, description in spec:
        suite.add_expectation(getattr(gx.expectations, kind)(**kwargs, description=description))
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate-{task}", data=batch, suite=suite)
    )
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}

    with _docs_site(context, report_dir) as site:
        actions = (
            [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[site])] if site else []
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"checkpoint-{task}",
                validation_definitions=[definition],
                actions=actions,
                result_format=result_format,
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": frame})
    validation = next(iter(run.run_results.values()))
    docs_index = Path(report_dir) / DOCS_DIR / "index.html" if report_dir is not None else None
    return {
        "success": bool(validation.success),
        "json": validation.to_json_dict(),
        "docs_index": docs_index,
    }


@contextlib.contextmanager
def _docs_site(context: Any, report_dir: Path | None) -> Iterator[str | None]:
    """A local data docs site built in a temporary folder, moved to ``report_dir/data_docs``."""
    if report_dir is None:
        yield None
        return
    with atomic_path(Path(report_dir) / DOCS_DIR, suffix=".tmp") as tmp:
        context.add_data_docs_site(
            "ecgops",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(tmp),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        yield "ecgops"


# ---- reporting ------------------------------------------------------------------------------


def _class_counts(frame: pd.DataFrame, labels: list[int]) -> dict[int, int]:
    if "label" not in frame.columns:
        return dict.fromkeys(labels, 0)
    counts = frame["label"].value_counts()
    return {lab: int(counts.get(lab, 0)) for lab in labels}


def _gx_statistics(result: dict[str, Any]) -> dict[str, Any]:
    stats = result["json"].get("statistics", {})
    return {
        "evaluated_expectations": stats.get("evaluated_expectations"),
        "successful_expectations": stats.get("successful_expectations"),
        "unsuccessful_expectations": stats.get("unsuccessful_expectations"),
    }


def _data_statistics(frame: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "_length" in frame.columns and len(frame):
        length = frame["_length"]
        out["beat_length"] = {
            "min": int(length.min()),
            "median": float(length.median()),
            "max": int(length.max()),
        }
        inner = frame["_inner_zero_run"]
        out["rows_with_inner_zeros"] = int((inner > 0).sum())
        out["max_inner_zero_run"] = int(inner.max())
    if "_signal_hash" in frame.columns:
        out["duplicated_signal_rows"] = int(frame["_signal_hash"].duplicated(keep=False).sum())
    if "record" in frame.columns and "beat" in frame.columns:
        key = [c for c in ("source", "record", "beat") if c in frame.columns]
        out["duplicated_id_rows"] = int(frame.duplicated(key, keep=False).sum())
    return out


def _describe_failures(
    result: dict[str, Any], frame: pd.DataFrame, spec: list[tuple[str, dict[str, Any], str]]
) -> list[str]:
    """One readable line per failed expectation, with up to MAX_EXAMPLES example rows."""
    descriptions = [d for _, _, d in spec]
    failures = []
    for i, item in enumerate(result["json"].get("results", [])):
        if item.get("success"):
            continue
        config = item.get("expectation_config", {})
        kwargs = config.get("kwargs", {})
        desc = config.get("description") or (descriptions[i] if i < len(descriptions) else "")
        name = _expectation_name(config.get("type", "?"), kwargs)
        failures.append(f"{name} [{desc}]: {_detail(item, kwargs, frame)}")
    return failures


def _expectation_name(kind: str, kwargs: dict[str, Any]) -> str:
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    return f"{kind}({target})" if target else kind


def _detail(item: dict[str, Any], kwargs: dict[str, Any], frame: pd.DataFrame) -> str:
    exc = item.get("exception_info") or {}
    if exc.get("raised_exception"):
        return f"could not be evaluated: {exc.get('exception_message')}"
    res = item.get("result") or {}
    details = res.get("details") or {}
    if "mismatched" in details:
        mism = details["mismatched"] or {}
        parts = []
        if mism.get("missing"):
            parts.append(f"missing columns {_short(sorted(mism['missing']))}")
        if mism.get("unexpected"):
            parts.append(f"unknown columns {_short(sorted(mism['unexpected']))}")
        return "; ".join(parts) or f"observed {_short(res.get('observed_value'))}"
    column = kwargs.get("column")
    if "unexpected_count" in res:
        n = res.get("element_count", len(frame))
        head = f"{res['unexpected_count']} of {n} rows ({res.get('unexpected_percent', 0):.3g}%)"
        if column == "label" and "partial_unexpected_counts" in res and "value_set" in kwargs:
            observed = {d.get("value") for d in res["partial_unexpected_counts"]}
            head += f", unexpected labels {_short(sorted(observed, key=str))}"
        if column == "_n_nonnumeric":
            bad = [c for c in SIGNAL_COLUMNS if c in frame and not _is_real_numeric(frame[c])]
            head += f", non-numeric columns {_short([f'{c} ({frame[c].dtype})' for c in bad])}"
        examples = _examples(res, kwargs, frame)
        return f"{head}; e.g. {examples}" if examples else head
    if "partial_missing_list" in res:
        return f"classes without rows: {_short(res['partial_missing_list'])}"
    observed = res.get("observed_value")
    return f"observed {_short(observed)}"


def _examples(res: dict[str, Any], kwargs: dict[str, Any], frame: pd.DataFrame) -> str:
    rows = res.get("partial_unexpected_index_list") or []
    values = res.get("partial_unexpected_list") or []
    column = kwargs.get("column")
    out = []
    for k, entry in enumerate(rows[:MAX_EXAMPLES]):
        row = entry if isinstance(entry, int) else _first_int(entry)
        if row is None or row >= len(frame):
            continue
        value = values[k] if k < len(values) else None
        out.append(f"row {row}{_ids(frame, row)}: {_row_value(frame, row, column, value)}")
    return "; ".join(out)


def _first_int(entry: Any) -> int | None:
    if isinstance(entry, dict):
        for v in entry.values():
            if isinstance(v, int):
                return v
    return None


def _ids(frame: pd.DataFrame, row: int) -> str:
    parts = [f"{c} {frame.at[row, c]!s}" for c in ("record", "beat") if c in frame.columns]
    return f" ({', '.join(parts)})" if parts else ""


def _row_value(frame: pd.DataFrame, row: int, column: str | None, value: Any) -> str:
    """Explain one unexpected row in terms of the original columns."""
    present = [c for c in SIGNAL_COLUMNS if c in frame.columns]
    if column in {"_min", "_max", "_n_nan", "_n_inf", "_n_nonnumeric"} and present:
        x, nonnum = _signal_matrix(frame.iloc[[row]], present)
        x, nonnum = x[0], nonnum[0]
        if column == "_min":
            j = int(np.nanargmin(np.where(np.isfinite(x), x, np.nan)))
            return f"{present[j]} = {x[j]:.6g}"
        if column == "_max":
            j = int(np.nanargmax(np.where(np.isfinite(x), x, np.nan)))
            return f"{present[j]} = {x[j]:.6g}"
        bad = {
            "_n_nan": np.isnan(x) & ~nonnum,
            "_n_inf": np.isinf(x),
            "_n_nonnumeric": nonnum,
        }[column]
        cols = [present[j] for j in np.flatnonzero(bad)]
        shown = ", ".join(f"{c} = {_fmt(frame.at[row, c])}" for c in cols[:3])
        return f"{value} cells ({shown}{', ...' if len(cols) > 3 else ''})"
    if column == "_inner_zero_run":
        return f"{value} zeros in a row inside the beat ({_zero_runs(frame, row, present)})"
    if column == "_length":
        return f"{value} samples before the padding"
    if column == "_class_count":
        return f"label {_fmt(frame.at[row, 'label'])} has {value} rows"
    if column == "_signal_hash":
        same = frame.index[frame["_signal_hash"] == frame.at[row, "_signal_hash"]].tolist()
        others = [r for r in same if r != row][:3]
        return f"same 187 values as row(s) {others}"
    if isinstance(value, dict):
        return "key " + ", ".join(f"{k} {v}" for k, v in value.items()) + " used twice or more"
    if column == "_n_blank_ids":
        blank = [c for c in ID_COLUMNS if c in frame.columns and _blank(frame[c].iloc[[row]])[0]]
        return f"empty {', '.join(blank)}"
    return _fmt(value)


def _fmt(value: Any) -> str:
    """A value as a reader expects it (``nan``, ``1.5``, ``'abc'``), not numpy's repr."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _zero_runs(frame: pd.DataFrame, row: int, present: list[str]) -> str:
    x = frame.loc[row, present].to_numpy(dtype=np.float64)
    length, _ = _padding(x[None, :])
    zero = np.flatnonzero(x[: int(length[0])] == 0)
    runs: list[tuple[int, int]] = []
    for j in zero:
        if runs and runs[-1][1] == j - 1:
            runs[-1] = (runs[-1][0], int(j))
        else:
            runs.append((int(j), int(j)))
    longest = max(runs, key=lambda r: r[1] - r[0])
    return f"x{longest[0]}..x{longest[1]} zero, beat ends at x{int(length[0]) - 1}"


def _short(values: Any, limit: int = 8) -> str:
    if not isinstance(values, list | tuple):
        return repr(values)
    shown = ", ".join(map(str, values[:limit]))
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"[{shown}{more}]"
