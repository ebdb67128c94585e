"""Flow ``train_classical``: LR / RF / LightGBM on raw beats and on features, per task and split.

Each model x input x task x scheme is one task run (one MLflow run, one metrics JSON, as the DVC
stage writes); independent runs go concurrently. A table of their metrics is published as a
markdown artifact and the flow run is tagged with their MLflow run ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from ecgops import orchestration as orc
from ecgops.config import Config, load_config
from flows import prepare_tracking


def _reads(cfg: Config, inputs: Mapping[str, Any]) -> list[Path]:
    kinds = ["processed", "splits"] + (["features"] if inputs["input"] == "features" else [])
    return [orc.table(cfg, kind, inputs["task"]) for kind in kinds]


@task(
    name="train-classical",
    task_run_name="{model}-{input}-{task}-{scheme}",
    cache_policy=orc.InputsAndFiles(
        code=orc.TRAIN_CODE, sections=("classical", "splits", "tracking"), reads=_reads
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("train"),
)
def fit_classical(cfg: Config, task: str, scheme: str, model: str, input: str) -> dict[str, Any]:
    """Train and evaluate one classical model; returns its metrics record."""
    from ecgops.training.classical import train_classical as train

    logger = get_run_logger()
    logger.info("training %s on %s inputs: %s / %s split", model, input, task, scheme)
    record = train(cfg, task, scheme, model, input)
    logger.info(
        "%s-%s %s/%s done, MLflow run %s", model, input, task, scheme, record.get("mlflow_run_id")
    )
    return orc.as_plain(record)


@flow(name="train-classical")
def train_classical(
    profile: str | None = None,
    tasks: list[str] | None = None,
    schemes: list[str] | None = None,
    models: list[str] | None = None,
    inputs: list[str] | None = None,
    max_workers: int | None = None,
) -> list[dict[str, Any]]:
    """Train the classical models and publish their metrics table.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        tasks: ``ptb`` and/or ``mitbih`` (default: ``pipeline.tasks``).
        schemes: ``beat`` and/or ``patient`` (default: ``splits.schemes``).
        models: ``lr``, ``rf``, ``lgbm`` for every task (default: ``pipeline.classical[task]``).
        inputs: ``raw`` and/or ``features`` (default: ``classical.inputs``).
        max_workers: trainings at once (default: ``pipeline.max_workers``).

    Returns:
        The metrics records (the flow fails, after publishing the table, if any run failed).
    """
    cfg = load_config(profile=profile)
    tasks = list(tasks or cfg.pipeline.tasks)
    calls = [
        (fit_classical, {"cfg": cfg, "task": t, "scheme": s, "model": m, "input": i})
        for t in tasks
        for s in schemes or cfg.splits.schemes
        for m in (cfg.pipeline.classical.get(t, []) if models is None else models)
        for i in inputs or cfg.classical.inputs
    ]
    get_run_logger().info("%d classical runs (profile %s)", len(calls), cfg.profile)
    orc.call(prepare_tracking, cfg, tasks=tasks)
    outcomes = orc.run_concurrently(calls, cfg, max_workers or cfg.pipeline.max_workers)
    records = orc.publish_metrics(
        outcomes, key=orc.artifact_key("classical-metrics"), title="Classical models"
    )
    orc.raise_on_failures(outcomes, "train-classical")
    return records
