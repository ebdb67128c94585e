"""Flow ``train_multilead``: the multi-lead PTB table, its split, its nets and classical models.

Needs the single-lead ``ptb`` table and split (the ``ingest`` flow): the ``ptb12`` split puts
the same patients in each part. Builds (and validates) ``data/processed/ptb12.parquet``, splits
it, then trains every net of ``pipeline.multilead.nets`` and every classical model of
``pipeline.multilead.classical`` (on per-lead features) on every lead set of
``pipeline.multilead.lead_sets`` per scheme (one task run, one MLflow run and one metrics JSON
``outputs/metrics/ptb12/{scheme}/{net}-{leadset}.json`` or
``{model}-features-{leadset}.json`` each, as the DVC ``multilead`` and ``multilead-classical``
stages write); independent runs go concurrently, on the same patients, and their metrics are
published as one table.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import Config, load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration.concurrency import call, raise_on_failures, run_concurrently
from ecgops.orchestration.tasks import stage_task
from ecgops.stages import MULTILEAD_TASK
from flows import prepare_tracking


@stage_task(f"build-{MULTILEAD_TASK}", kind="data")
def build_multilead(cfg: Config) -> str:
    """Build, validate and atomically write the multi-lead PTB table."""
    from ecgops.data.multilead import build_multilead as build

    with art.validation_artifact(MULTILEAD_TASK):
        return str(build(cfg))


@stage_task(f"split-{MULTILEAD_TASK}", kind="data")
def split_multilead(cfg: Config) -> str:
    """Split the multi-lead table on the single-lead split's patients."""
    from ecgops.data.multilead_splits import make_multilead_splits

    return str(make_multilead_splits(cfg))


@stage_task("train-multilead", kind="train", task_run_name="{model}-{leads}-{scheme}")
def fit_multilead(cfg: Config, scheme: str, model: str, leads: str) -> dict[str, Any]:
    """Train and evaluate one multi-lead net on one lead set; returns its metrics record."""
    from ecgops.training.multilead import train_multilead as train

    record = train(cfg, scheme, model, leads)
    get_run_logger().info(
        "%s-%s/%s done, MLflow run %s", model, leads, scheme, record.get("mlflow_run_id")
    )
    return art.as_plain(record)


@stage_task(
    "train-multilead-classical", kind="train", task_run_name="{model}-features-{leads}-{scheme}"
)
def fit_multilead_classical(cfg: Config, scheme: str, model: str, leads: str) -> dict[str, Any]:
    """Train and evaluate one classical model on per-lead features of one lead set."""
    from ecgops.training.multilead_classical import train_multilead_classical as train

    record = train(cfg, scheme, model, leads)
    get_run_logger().info(
        "%s-features-%s/%s done, MLflow run %s", model, leads, scheme, record.get("mlflow_run_id")
    )
    return art.as_plain(record)


@flow(name="train-multilead")
def train_multilead(
    profile: str | None = None,
    schemes: list[str] | None = None,
    models: list[str] | None = None,
    lead_sets: list[str] | None = None,
    max_workers: int | None = None,
    classical: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Build and split ptb12, train the multi-lead nets and the classical models on per-lead
    features, and publish their metrics table.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        schemes: ``beat`` and/or ``patient`` (default: ``splits.schemes``).
        models: multi-lead nets (default: ``pipeline.multilead.nets``).
        lead_sets: keys of ``multilead.lead_sets`` (default: ``pipeline.multilead.lead_sets``).
        max_workers: trainings at once (default: ``pipeline.max_workers``).
        classical: classical models on per-lead features (default:
            ``pipeline.multilead.classical``).

    Returns:
        The metrics records (the flow fails, after publishing the table, if any run failed).
    """
    cfg = load_config(profile=profile)
    plan = cfg.pipeline.multilead
    kinds = (
        (fit_multilead, plan.nets if models is None else models),
        (fit_multilead_classical, plan.classical if classical is None else classical),
    )
    calls = [
        (fn, {"cfg": cfg, "scheme": s, "model": m, "leads": ls})
        for s in schemes or cfg.splits.schemes
        for fn, names in kinds
        for m in names
        for ls in (plan.lead_sets if lead_sets is None else lead_sets)
    ]
    logger = get_run_logger()
    if not calls:
        logger.info("no multi-lead runs configured (pipeline.multilead)")
        return []
    call(build_multilead, cfg)
    call(split_multilead, cfg)
    logger.info("%d multi-lead runs (profile %s)", len(calls), cfg.profile)
    call(prepare_tracking, cfg, tasks=[MULTILEAD_TASK])
    outcomes = run_concurrently(calls, cfg, max_workers or cfg.pipeline.max_workers)
    records = art.publish_metrics(
        outcomes, key=art.artifact_key("multilead-metrics"), title="Multi-lead models"
    )
    raise_on_failures(outcomes, "train-multilead")
    return records
