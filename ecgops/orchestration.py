"""What the Prefect flows in ``flows/`` share: cache keys, retry rules, concurrency, artifacts.

The flows only compose ecgops functions; this module holds the orchestration policy around
them, so every flow retries, caches and reports the same way:

- **retries** only where a retry can help: :func:`is_transient` says yes for an unreachable
  MLflow server or a network/IO hiccup, no for bad data, a registry refusal or a bug;
- **caching** keyed on what a task really depends on (:class:`InputsAndFiles`): its
  arguments, the ``params.yaml`` sections it reads, the md5 of the files it reads and the
  ecgops source; results persist under ``<project>/.prefect/results`` (JSON, no pickles), so a
  rerun skips finished work, and an entry whose output files are gone is forgotten;
- **concurrency**: :func:`run_concurrently` runs independent task calls in a thread pool of
  ``max_workers`` and collects every outcome (one failure does not hide the others);
- **reporting**: markdown artifacts (metrics table, validation result) and flow-run tags that
  link a Prefect flow run to its MLflow runs (MLflow runs carry ``prefect_flow_run_id``).

Import this module lazily from the CLI (it imports prefect).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy

from ecgops.config import Config, find_root
from ecgops.errors import EcgopsError, TrackingUnavailable, ValidationFailed

# ---- policy constants (orchestration, not modelling: no effect on any result) -------------
RETRIES = 3
"""Retries of a task whose failure is transient (then it fails for good)."""
RETRY_BACKOFF_S = float(os.environ.get("ECGOPS_RETRY_BACKOFF_S", "10"))
"""First retry delay; each further retry doubles it (10, 20, 40 s). Env override for tests."""
RETRY_JITTER = 0.2
"""Random +-20 % on each delay, so concurrent retries do not hit a server at once."""
TIMEOUT_S: dict[str, int | None] = {
    "io": 30 * 60,  # copy raw records, import CSVs
    "data": 2 * 3600,  # build, validate, split, features on the full data
    "registry": 15 * 60,  # register, promote (includes a smoke prediction)
    "train": None,  # see below
}
"""Hard limit per task kind, in seconds: a hung task fails instead of blocking the pipeline.

These tasks run in the flow's own thread, where Prefect can interrupt them. Trainings run in
worker threads (or Dask workers), where Python cannot interrupt a blocking call: Prefect would
only warn; their budget is the profile's epochs and row caps, the MLflow client has its own
HTTP timeouts (ecgops.tracking), and a hung run is stopped by cancelling the flow run (the
worker ends its process).
"""
RESULTS_DIR = ".prefect/results"
"""Persisted task results (the cache), relative to the project root."""
RESULT_SERIALIZER = "json"
"""Results are JSON: nothing is unpickled from the cache."""

_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_TRANSIENT_NAMES = frozenset(
    {"OperationalError", "ConnectTimeout", "ReadTimeout", "MaxRetryError", "RemoteDisconnected"}
)
_TRANSIENT_MLFLOW_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"}
)


# ---- retries -------------------------------------------------------------------------------
def is_transient(exc: BaseException | None) -> bool:
    """Whether retrying the call that raised ``exc`` can help.

    Transient: the MLflow server unreachable (:class:`TrackingUnavailable`), connection and
    timeout errors, a locked SQLite database, MLflow "temporarily unavailable" answers.
    Permanent: bad data (:class:`DataError`, :class:`ValidationFailed`), registry refusals,
    missing files, Prefect's own task timeout, and any other exception (a bug does not go
    away by running it again). The exception's cause chain is searched too.

    Args:
        exc: the exception a task raised.

    Returns:
        True when a retry may succeed.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TrackingUnavailable):
            return True
        if isinstance(exc, EcgopsError) or type(exc).__name__ == "TaskRunTimeoutError":
            return False
        if isinstance(exc, _PERMANENT_OS_ERRORS):
            return False
        if isinstance(exc, OSError):  # connection refused or reset, timeouts, network I/O
            return True
        if type(exc).__name__ in _TRANSIENT_NAMES:
            return True
        if getattr(exc, "error_code", None) in _TRANSIENT_MLFLOW_CODES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task run only on a transient error."""
    data = getattr(state, "data", None)
    if not isinstance(data, BaseException):
        try:
            data = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - the result may not be readable
            return False
    return is_transient(data) if isinstance(data, BaseException) else False


def retry_options(kind: str) -> dict[str, Any]:
    """Prefect task options for a task kind: retries with back-off where a retry can help.

    Args:
        kind: ``io``, ``data``, ``train`` or ``registry`` (see :data:`TIMEOUT_S`). ``data``
            tasks read local files only: a retry cannot help them, they get no retries.

    Returns:
        Keyword arguments for ``prefect.task``.
    """
    from prefect.tasks import exponential_backoff

    options: dict[str, Any] = {}
    if TIMEOUT_S[kind] is not None:
        options["timeout_seconds"] = TIMEOUT_S[kind]
    if kind != "data":
        options.update(
            retries=RETRIES,
            retry_delay_seconds=exponential_backoff(backoff_factor=RETRY_BACKOFF_S),
            retry_jitter_factor=RETRY_JITTER,
            retry_condition_fn=retry_if_transient,
        )
    return options


# ---- caching -------------------------------------------------------------------------------
def results_dir(cfg: Config) -> Path:
    """Where task results (the cache) persist: ``<project>/.prefect/results``."""
    return cfg.root / RESULTS_DIR


def table(cfg: Config, kind: str, task: str) -> Path:
    """A task's parquet table of a kind: ``processed``, ``splits`` or ``features``."""
    return cfg.path(kind) / f"{task}.parquet"


_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: Path) -> str:
    """md5 of a file ("missing" when absent); a directory hashes its files' names and md5s.

    Memoised per (path, size, mtime) so a pipeline hashes each data file once.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.md5()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{child.relative_to(path)}={file_fingerprint(child)};".encode())
        return h.hexdigest()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _MD5_CACHE:
        h = hashlib.md5()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        _MD5_CACHE[memo] = h.hexdigest()
    return _MD5_CACHE[memo]


CORE_MODULES = ("__init__.py", "config.py", "errors.py", "io.py", "schema.py", "tracking.py")
"""Top-level modules every task depends on."""


@lru_cache(maxsize=16)
def code_fingerprint(parts: tuple[str, ...] = ()) -> str:
    """md5 over ecgops sources: a code change invalidates the cache of the tasks it affects.

    Args:
        parts: subpackages or modules the task's code lives in (e.g. ``("data",)``); the
            core modules (:data:`CORE_MODULES`) always count. Empty: the whole package.
    """
    package = Path(__file__).resolve().parent
    if parts:
        roots = [package / name for name in (*CORE_MODULES, *parts)]
        sources = [f for r in roots for f in ([r] if r.is_file() else r.rglob("*.py"))]
    else:
        sources = list(package.rglob("*.py"))
    h = hashlib.md5()
    for source in sorted(set(sources)):
        h.update(str(source.relative_to(package)).encode())
        h.update(source.read_bytes())
    return h.hexdigest()


def cache_key(
    name: str,
    cfg: Config,
    inputs: Mapping[str, Any],
    sections: Sequence[str] = (),
    files: Iterable[Path] = (),
    code: Sequence[str] = (),
) -> str:
    """A cache key for one task call: same key, same work.

    Args:
        name: the task's name.
        cfg: the configuration of the call.
        inputs: the call's other arguments (JSON-able values; :class:`Config` ones skipped).
        sections: ``params.yaml`` sections the task reads (e.g. ``("classical", "splits")``).
        files: files the task reads; their md5 enters the key.
        code: ecgops subpackages the task runs (see :func:`code_fingerprint`).

    Returns:
        A hex digest over the name, inputs, profile, seed, project root, MLflow tracking URI,
        the sections, the files' md5 and the ecgops code fingerprint.
    """
    params = cfg.model_dump(mode="json")
    payload = {
        "task": name,
        "inputs": {k: v for k, v in sorted(inputs.items()) if not isinstance(v, Config)},
        "profile": cfg.profile,
        "seed": cfg.seed,
        "root": str(cfg.root),
        "tracking_uri": cfg.tracking_uri,
        "params": {s: params[s] for s in sorted(sections)},
        "files": {_rel(cfg, f): file_fingerprint(f) for f in sorted(files, key=str)},
        "code": code_fingerprint(tuple(sorted(code))),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.md5(text.encode()).hexdigest()


def _rel(cfg: Config, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(cfg.root.resolve()))
    except ValueError:
        return str(path)


DATA_CODE = ("data",)
FEATURES_CODE = ("data", "features")
TRAIN_CODE = ("data", "features", "models", "training", "evaluation", "registry")
REGISTRY_CODE = ("registry", "evaluation")

PathsFn = Callable[[Config, Mapping[str, Any]], Iterable[Path]]


@dataclass
class InputsAndFiles(CachePolicy):
    """Prefect cache policy: inputs + params sections + md5 of the files read + code.

    Attributes:
        sections: ``params.yaml`` sections the task reads.
        reads: ``(cfg, inputs) -> paths`` of the files the task reads.
        writes: ``(cfg, inputs) -> paths`` the task writes; when one is missing, the cached
            entry is forgotten so the task runs again (a deleted output is rebuilt).
        code: ecgops subpackages the task runs (empty: the whole package).
    """

    sections: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    reads: PathsFn | None = None
    writes: PathsFn | None = None

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The cache key of a task call (None, i.e. no caching, without a Config input)."""
        cfg = next((v for v in inputs.values() if isinstance(v, Config)), None)
        if cfg is None:
            return None
        files = list(self.reads(cfg, inputs)) if self.reads else []
        key = cache_key(task_ctx.task.name, cfg, inputs, self.sections, files, self.code)
        if self.writes and not all(Path(p).exists() for p in self.writes(cfg, inputs)):
            _forget(task_ctx, key)
        return key


def _forget(task_ctx: Any, key: str) -> None:
    """Delete a cached record from local result storage (its outputs are gone)."""
    store = getattr(task_ctx, "result_store", None)
    for storage in (
        getattr(store, "metadata_storage", None),
        getattr(store, "result_storage", None),
    ):
        basepath = getattr(storage, "basepath", None)
        if basepath:
            Path(basepath, key).unlink(missing_ok=True)


# ---- concurrency ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """The outcome of one task call run by :func:`run_concurrently`."""

    label: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the call completed."""
        return self.error is None


def call_label(task: Any, params: Mapping[str, Any]) -> str:
    """A readable label of a task call, e.g. ``train-classical[ptb beat lgbm raw]``."""
    shown = [str(v) for v in params.values() if not isinstance(v, Config | dict)]
    return f"{task.name}[{' '.join(shown)}]"


def bind(task: Any, cfg: Config) -> Any:
    """The task with its results persisted under this project's :func:`results_dir`."""
    return task.with_options(result_storage=results_dir(cfg))


def run_concurrently(
    calls: Sequence[tuple[Any, Mapping[str, Any]]],
    cfg: Config,
    max_workers: int,
    runner: Any | None = None,
) -> list[Outcome]:
    """Run independent Prefect task calls concurrently and collect every outcome.

    Must be called inside a flow run. Failed calls are logged and returned as outcomes with
    an error (the others still run), so the caller reports all of them and decides.

    Args:
        calls: ``(task, parameters)`` pairs.
        cfg: configuration (where results persist).
        max_workers: threads, i.e. task calls running at once (at least 1).
        runner: a Prefect task runner to use instead (e.g. :func:`dask_runner`).

    Returns:
        One :class:`Outcome` per call, in order.
    """
    from prefect import get_run_logger
    from prefect.task_runners import ThreadPoolTaskRunner

    logger = get_run_logger()
    runner = runner or ThreadPoolTaskRunner(max_workers=max(1, int(max_workers)))
    with runner:
        futures = [
            (call_label(task, params), runner.submit(bind(task, cfg), parameters=dict(params)))
            for task, params in calls
        ]
        outcomes = []
        for label, future in futures:
            try:
                outcomes.append(Outcome(label, value=future.result()))
            except Exception as exc:  # noqa: BLE001 - reported, the caller decides
                logger.error("%s failed: %s", label, exc)
                outcomes.append(Outcome(label, error=f"{type(exc).__name__}: {exc}"))
    return outcomes


def dask_runner(n_workers: int = 2, address: str | None = None) -> Any:
    """A prefect-dask task runner: a running scheduler, or a local cluster on 127.0.0.1.

    Args:
        n_workers: local cluster size (processes with one thread each: no GIL contention,
            and one model training per core).
        address: ``tcp://host:8786`` of a running Dask scheduler (other machines).
    """
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": max(1, int(n_workers)),
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0",  # loopback, a free port
        },
    )


def prepare_tracking(cfg: Config, tasks: Sequence[str]) -> str:
    """Create the MLflow store and the tasks' experiments once, before concurrent runs.

    Concurrent first runs would otherwise race to create a fresh SQLite store (its schema
    migrations) or the same experiment. Also fails fast when a tracking server is down.

    Args:
        cfg: configuration (tracking URI, experiment prefix).
        tasks: ``ptb`` and/or ``mitbih``.

    Returns:
        The tracking URI.

    Raises:
        TrackingUnavailable: the tracking server is unreachable.
    """
    from ecgops.tracking import configure, ensure_experiment

    uri = configure(cfg)
    for task in tasks:
        ensure_experiment(cfg, task)
    return uri


def call(prefect_task: Any, cfg: Config, /, **params: Any) -> Any:
    """Run one Prefect task call now (results persisted under the project)."""
    return bind(prefect_task, cfg)(cfg=cfg, **params)


def raise_on_failures(outcomes: Sequence[Outcome], what: str) -> None:
    """Raise one error listing every failed call, if any failed."""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        lines = "; ".join(f"{o.label}: {o.error}" for o in failed)
        raise RuntimeError(f"{what}: {len(failed)} of {len(outcomes)} runs failed: {lines}")


# ---- reporting -----------------------------------------------------------------------------
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
            _fmt((r.get("val") or {}).get("balanced_accuracy")),
            *(_fmt(test.get(c)) for c in METRIC_COLUMNS),
            _fmt((r.get("timing") or {}).get("fit_seconds"), 1),
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


def _fmt(value: Any, digits: int = 3) -> str:
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


# ---- sweeps ---------------------------------------------------------------------------------
SWEEP_DEFAULTS: dict[tuple[str, str], list[Any]] = {
    ("lgbm", "num_leaves"): [7, 15, 31],
    ("lgbm", "learning_rate"): [0.03, 0.05, 0.1],
    ("rf", "min_samples_leaf"): [1, 2, 4],
}
"""Small default grids of :func:`flows.sweep.sweep`, per (model, hyperparameter)."""


def sweep_overrides(cfg: Config, model: str, param: str, value: Any, sweep: str) -> dict[str, Any]:
    """Config overrides of one sweep trial: the value, its own outputs and MLflow experiment.

    Args:
        cfg: the base configuration.
        model: ``lr``, ``rf`` or ``lgbm``.
        param: a field of ``classical.<model>``.
        value: the value to try.
        sweep: the sweep's name (a folder under ``<outputs>/sweeps``).

    Returns:
        A nested dict for ``load_config(overrides=...)``.

    Raises:
        ValueError: the model or hyperparameter is unknown.
    """
    section = getattr(cfg.classical, model, None)
    if (
        section is None
        or not hasattr(section, "model_fields")
        or param not in type(section).model_fields
    ):
        raise ValueError(f"params.yaml has no classical.{model}.{param} to sweep")
    outputs = Path(cfg.paths.outputs) / "sweeps" / sweep / f"{param}-{value}"
    return {
        "classical": {model: {param: value}},
        "paths": {"outputs": str(outputs)},
        "tracking": {"experiment_prefix": f"{cfg.tracking.experiment_prefix}-sweep"},
    }


def sweep_summary(
    param: str, values: Sequence[Any], outcomes: Sequence[Outcome], metric: str
) -> dict[str, Any]:
    """The trials of a sweep and the best one by ``metric`` on the validation part."""
    trials = [
        {"value": v, "record": o.value if o.ok else None, "error": o.error}
        for v, o in zip(values, outcomes, strict=True)
    ]
    scored = [t for t in trials if t["record"] and metric in (t["record"].get("val") or {})]
    best = max(scored, key=lambda t: t["record"]["val"][metric], default=None)
    return {"param": param, "metric": metric, "trials": trials, "best": best}


def sweep_markdown(summary: Mapping[str, Any]) -> str:
    """Markdown table of a sweep's trials (validation and test scores, MLflow run)."""
    param, metric = summary["param"], summary["metric"]
    lines = [
        f"# Sweep of {param}",
        "",
        f"| {param} | val {metric} | test {metric} | MLflow run |",
        "|---|---|---|---|",
    ]
    for trial in summary["trials"]:
        record = trial["record"] or {}
        lines.append(
            f"| {trial['value']} | {_fmt((record.get('val') or {}).get(metric))}"
            f" | {_fmt((record.get('test') or {}).get(metric))}"
            f" | {record.get('mlflow_run_id') or trial['error'] or ''} |"
        )
    best = summary.get("best")
    lines += ["", f"**Best:** {param} = {best['value']}" if best else "**Best:** none"]
    return "\n".join(lines) + "\n"


# ---- plain data for persisted results ---------------------------------------------------------
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


# ---- DVC parity ------------------------------------------------------------------------------
PARAMS_DIR = "params"
"""Resolved params per section, under ``<outputs>``: the deps of the DVC stages."""


def write_param_sections(cfg: Config) -> list[Path]:
    """Write ``<outputs>/params/{section}.json`` as DVC's ``params`` stage does."""
    from ecgops.config import write_sections

    return write_sections(cfg, cfg.path("outputs") / PARAMS_DIR)


# ---- entry point for the CLI ------------------------------------------------------------------
def run_pipeline(profile: str | None = None, **params: Any) -> dict[str, Any]:
    """Run the whole pipeline flow (ingest, trainings, register and promote) in this process.

    Uses the Prefect API in ``PREFECT_API_URL`` when set, else Prefect's ephemeral local
    server. Args other than ``profile`` are the ``pipeline`` flow's parameters.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        **params: e.g. ``tasks=["ptb"]``, ``max_workers=1``, ``promote=False``.

    Returns:
        The pipeline's summary (metrics records per track and the registry decisions).
    """
    root = str(find_root())
    if root not in sys.path:
        sys.path.insert(0, root)  # flows/ lives beside the package, at the project root
    from flows.pipeline import pipeline

    return pipeline(profile=profile, **params)
