"""Flow ``train_deep``: LSTM, BiLSTM, CNN, residual CNN and transformer, per task and split.

Each model x task x scheme is one task run (one MLflow run, one metrics JSON, as the DVC stage
writes); independent runs go concurrently. A table of their metrics is published as a markdown
artifact and the flow run is tagged with their MLflow run ids.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import Config, load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration.concurrency import call, raise_on_failures, run_concurrently
from ecgops.orchestration.tasks import stage_task
from flows import prepare_tracking


@stage_task("train-deep", kind="train", task_run_name="{model}-{task}-{scheme}")
def fit_deep(cfg: Config, task: str, scheme: str, model: str) -> dict[str, Any]:
    """Train and evaluate one deep model; returns its metrics record."""
    from ecgops.training.deep import train_deep as train

    logger = get_run_logger()
    logger.info("training %s: %s / %s split", model, task, scheme)
    record = train(cfg, task, scheme, model)
    logger.info("%s %s/%s done, MLflow run %s", model, task, scheme, record.get("mlflow_run_id"))
    return art.as_plain(record)


@flow(name="train-deep")
def train_deep(
    profile: str | None = None,
    tasks: list[str] | None = None,
    schemes: list[str] | None = None,
    models: list[str] | None = None,
    max_workers: int | None = None,
) -> list[dict[str, Any]]:
    """Train the deep models and publish their metrics table.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        tasks: ``ptb`` and/or ``mitbih`` (default: ``pipeline.tasks``).
        schemes: ``beat`` and/or ``patient`` (default: ``splits.schemes``).
        models: architectures for every task (default: ``pipeline.deep[task]``).
        max_workers: trainings at once (default: ``pipeline.max_workers``).

    Returns:
        The metrics records (the flow fails, after publishing the table, if any run failed).
    """
    cfg = load_config(profile=profile)
    tasks = list(tasks or cfg.pipeline.tasks)
    calls = [
        (fit_deep, {"cfg": cfg, "task": t, "scheme": s, "model": m})
        for t in tasks
        for s in schemes or cfg.splits.schemes
        for m in (cfg.pipeline.deep.get(t, []) if models is None else models)
    ]
    get_run_logger().info("%d deep runs (profile %s)", len(calls), cfg.profile)
    call(prepare_tracking, cfg, tasks=tasks)
    outcomes = run_concurrently(calls, cfg, max_workers or cfg.pipeline.max_workers)
    records = art.publish_metrics(
        outcomes, key=art.artifact_key("deep-metrics"), title="Deep models"
    )
    raise_on_failures(outcomes, "train-deep")
    return records
