"""Flow ``pretrain_and_transfer``: encoders pretrained on MIT-BIH, fine-tuned on PTB.

Supervised and contrastive pretraining on MIT-BIH's patient split (one encoder per method,
:data:`~ecgops.stages.PRETRAIN_SCHEME`; concurrently with the from-scratch PTB baselines), then
every encoder x strategy (A frozen, B all, C head then all) x PTB scheme fine-tune on PTB. The
platform's GPU workload: deployed to the ``ecgops-gpu`` docker work pool (prefect.yaml), and
run on CPU inside the pipeline otherwise.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import Config, load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration.concurrency import call, raise_on_failures, run_concurrently
from ecgops.orchestration.tasks import stage_task
from ecgops.stages import FINETUNE_TASK, PRETRAIN_SCHEME, PRETRAIN_TASK, SCRATCH
from flows import prepare_tracking

SCRATCH_STRATEGY = "B"  # the baseline trains everything, like strategy B


@stage_task("pretrain", kind="train", task_run_name="pretrain-{method}-{scheme}")
def pretrain_encoder(cfg: Config, method: str, scheme: str) -> dict[str, Any]:
    """Pretrain one encoder on MIT-BIH (``supervised`` or ``contrastive``)."""
    from ecgops.training.pretrain import pretrain

    logger = get_run_logger()
    logger.info("pretraining the %s encoder on %s (%s split)", method, PRETRAIN_TASK, scheme)
    summary = pretrain(cfg, method, scheme)
    logger.info(
        "%s encoder saved to %s, MLflow run %s",
        method,
        summary.get("encoder_path"),
        summary.get("run_id"),
    )
    return art.as_plain(summary)


@stage_task("finetune", kind="train", task_run_name="finetune-{encoder}-{strategy}-{scheme}")
def finetune_encoder(cfg: Config, scheme: str, encoder: str, strategy: str) -> dict[str, Any]:
    """Fine-tune a pretrained encoder (or train the same network from scratch) on PTB."""
    from ecgops.training.finetune import finetune

    logger = get_run_logger()
    logger.info("fine-tuning: %s encoder, strategy %s, %s split", encoder, strategy, scheme)
    summary = finetune(cfg, scheme, encoder, strategy)
    logger.info("%s done, MLflow run %s", summary.get("name"), summary.get("run_id"))
    return art.as_plain(summary)


@flow(name="pretrain-and-transfer")
def pretrain_and_transfer(
    profile: str | None = None,
    schemes: list[str] | None = None,
    methods: list[str] | None = None,
    strategies: list[str] | None = None,
    scratch: bool = True,
    max_workers: int | None = None,
) -> list[dict[str, Any]]:
    """Pretrain encoders on MIT-BIH and fine-tune them on PTB; publish the metrics table.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        schemes: PTB splits fine-tuned on, ``beat`` and/or ``patient`` (default:
            ``splits.schemes``); every one starts from the same encoders.
        methods: pretraining methods (default: ``pipeline.pretrain_methods``); each one's
            encoder is fine-tuned when it is in ``pipeline.finetune_encoders``.
        strategies: ``A``, ``B``, ``C`` (default: ``transfer.strategies``).
        scratch: also train the from-scratch baseline.
        max_workers: trainings at once (default: ``pipeline.max_workers``).

    Returns:
        The pretraining and fine-tuning records (the flow fails, after publishing the table,
        if any run failed).
    """
    cfg = load_config(profile=profile)
    schemes = list(schemes or cfg.splits.schemes)
    methods = list(methods or cfg.pipeline.pretrain_methods)
    strategies = list(strategies or cfg.transfer.strategies)
    workers = max_workers or cfg.pipeline.max_workers
    logger = get_run_logger()

    first = [
        (pretrain_encoder, {"cfg": cfg, "method": m, "scheme": PRETRAIN_SCHEME}) for m in methods
    ]
    if scratch:
        first += [
            (
                finetune_encoder,
                {"cfg": cfg, "scheme": s, "encoder": SCRATCH, "strategy": SCRATCH_STRATEGY},
            )
            for s in schemes
        ]
    logger.info("phase 1: %d pretraining/scratch runs", len(first))
    call(prepare_tracking, cfg, tasks=[PRETRAIN_TASK, FINETUNE_TASK])
    outcomes = run_concurrently(first, cfg, workers)

    pretrained = [
        params["method"]
        for (fn, params), outcome in zip(first, outcomes, strict=True)
        if fn is pretrain_encoder and outcome.ok
    ]
    second = [
        (finetune_encoder, {"cfg": cfg, "scheme": s, "encoder": m, "strategy": st})
        for s in schemes
        for m in pretrained
        if m in cfg.pipeline.finetune_encoders
        for st in strategies
    ]
    logger.info("phase 2: %d fine-tunes", len(second))
    outcomes += run_concurrently(second, cfg, workers)

    records = art.publish_metrics(
        outcomes, key=art.artifact_key("transfer-metrics"), title="Pretraining and transfer"
    )
    raise_on_failures(outcomes, "pretrain-and-transfer")
    return records
