"""Flow ``pipeline``: ingest -> classical -> deep -> multilead -> transfer -> register -> report.

The parent flow of the scheduled deployments (prefect.yaml); ``ecgops pipeline`` loads it by
its entrypoint (``flows/pipeline.py:pipeline``). The training tracks run as subflows side by
side, sharing ``max_workers`` compute slots (:mod:`ecgops.orchestration.slots`), so both cores
stay busy until the last training ends; the transfer track can instead be sent to the GPU work
pool (``transfer_deployment``), where it runs beside the local tracks. Registering waits for every
track: a failed training stops the pipeline before anything is registered. At the end, every
task run's wall and CPU time is published (the ``pipeline-timings`` artifact,
``outputs/timings/pipeline.json``, MLflow tags on the trainings' runs), also after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import Config, load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration import timing
from ecgops.orchestration.concurrency import call, raise_on_failures, run_concurrently
from ecgops.orchestration.slots import slots_open
from ecgops.orchestration.tasks import plain_task
from flows import prepare_tracking
from flows.evaluate_and_register import evaluate_and_register
from flows.ingest import ingest
from flows.pretrain_and_transfer import pretrain_and_transfer
from flows.train_classical import train_classical
from flows.train_deep import train_deep
from flows.train_multilead import train_multilead

TRACKS = {
    "classical": train_classical,
    "deep": train_deep,
    "multilead": train_multilead,
    "transfer": pretrain_and_transfer,
}
MULTILEAD_TASKS = {"ptb"}  # the multi-lead table is split on the ptb split's patients
TRANSFER_TASKS = {"mitbih", "ptb"}  # pretrained on MIT-BIH, fine-tuned on PTB


@dataclass(frozen=True)
class Plan:
    """What one pipeline run does (the :func:`pipeline` flow's parameters, defaults applied)."""

    tasks: list[str]
    inputs: list[str] | None
    schemes: list[str] | None
    kaggle_dir: str | None
    classical_models: list[str] | None
    deep_models: list[str] | None
    transfer: bool
    transfer_deployment: str | None
    register_challengers: bool
    promote: bool
    report: bool
    max_workers: int


@plain_task("track", task_run_name="track-{name}", persist_result=False)
def run_track(
    name: str, params: dict[str, Any], deployment: str | None = None
) -> list[dict[str, Any]]:
    """Run one training track as a subflow here, or as a run of a deployment (GPU pool)."""
    if deployment:
        from prefect.deployments import run_deployment

        get_run_logger().info("sending the %s track to deployment %s", name, deployment)
        flow_run = run_deployment(name=deployment, parameters=params, timeout=None)
        if flow_run.state is None or not flow_run.state.is_completed():
            raise RuntimeError(f"deployment {deployment} ended in state {flow_run.state}")
        return []
    return TRACKS[name](**params)


@plain_task("report", kind="io")
def write_report(cfg: Config) -> list[str]:
    """Write the results report (Markdown + HTML) from the metrics files and MLflow runs."""
    from ecgops.evaluation.report import build_report

    written = [str(p) for p in build_report(cfg)]
    get_run_logger().info("report: %s", ", ".join(written))
    return written


@flow(name="pipeline")
def pipeline(
    profile: str | None = None,
    tasks: list[str] | None = None,
    schemes: list[str] | None = None,
    kaggle_dir: str | None = None,
    classical_models: list[str] | None = None,
    classical_inputs: list[str] | None = None,
    deep_models: list[str] | None = None,
    transfer: bool = True,
    transfer_deployment: str | None = None,
    register_challengers: bool = True,
    promote: bool = True,
    report: bool = True,
    max_workers: int | None = None,
) -> dict[str, Any]:
    """The whole platform: data, every training track, registration and the promotion gate.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        tasks: ``ptb`` and/or ``mitbih`` (default: ``pipeline.tasks``).
        schemes: ``beat`` and/or ``patient`` (default: ``splits.schemes``).
        kaggle_dir: import the Kaggle CSVs of this directory instead of the raw records.
        classical_models: for every task (default: ``pipeline.classical``); ``[]`` skips.
        classical_inputs: classical inputs for every task (default:
            ``pipeline.classical_inputs[task]``).
        deep_models: for every task (default: ``pipeline.deep``); ``[]`` skips the track.
        transfer: run the pretraining and transfer track (needs both tasks).
        transfer_deployment: run that track as this deployment instead (e.g.
            ``pretrain-and-transfer/gpu-pretrain-and-transfer`` on the GPU pool).
        register_challengers: register each task's best run as ``challenger``.
        promote: run the promotion gate after registering.
        report: write the results report (``reports/``, README results block) at the end.
        max_workers: trainings at once over all tracks (default: ``pipeline.max_workers``).

    Returns:
        The metrics records per track, the registry summary and the report files.
    """
    cfg = load_config(profile=profile)
    plan = Plan(
        tasks=list(tasks or cfg.pipeline.tasks),
        inputs=classical_inputs,
        schemes=schemes,
        kaggle_dir=kaggle_dir,
        classical_models=classical_models,
        deep_models=deep_models,
        transfer=transfer,
        transfer_deployment=transfer_deployment,
        register_challengers=register_challengers,
        promote=promote,
        report=report,
        max_workers=max_workers or cfg.pipeline.max_workers,
    )
    with art.timings_collected(cfg, "pipeline"):  # published also when a stage fails
        return _steps(cfg, plan)


def _steps(cfg: Config, plan: Plan) -> dict[str, Any]:
    """The pipeline's steps (see :func:`pipeline`)."""
    tasks, inputs, schemes = plan.tasks, plan.inputs, plan.schemes
    classical_models, deep_models = plan.classical_models, plan.deep_models
    transfer, transfer_deployment = plan.transfer, plan.transfer_deployment
    logger = get_run_logger()
    logger.info("pipeline: profile %s, tasks %s, root %s", cfg.profile, tasks, cfg.root)

    data = ingest(
        profile=cfg.profile,
        tasks=tasks,
        kaggle_dir=plan.kaggle_dir,
        with_features=classical_models != [] and cfg.uses_features(tasks, inputs),
    )

    common = {"profile": cfg.profile, "schemes": schemes}
    tracks: dict[str, dict[str, Any]] = {}
    if classical_models != []:
        tracks["classical"] = {
            **common,
            "tasks": tasks,
            "models": classical_models,
            "inputs": inputs,
        }
    if deep_models != []:
        tracks["deep"] = {**common, "tasks": tasks, "models": deep_models}
    multilead = cfg.pipeline.multilead
    wanted = bool((multilead.nets or multilead.classical) and multilead.lead_sets)
    if deep_models != [] and set(tasks) >= MULTILEAD_TASKS and wanted:
        tracks["multilead"] = dict(common)  # ptb12 models x lead sets (pipeline.multilead)
    if transfer and set(tasks) >= TRANSFER_TASKS:
        tracks["transfer"] = dict(common)
    elif transfer:
        logger.info("transfer track skipped: it needs both tasks %s", sorted(TRANSFER_TASKS))

    call(prepare_tracking, cfg, tasks=tasks)  # before the tracks start at once
    workers = plan.max_workers
    remote = [name for name in tracks if name == "transfer" and transfer_deployment]
    order = remote + [name for name in tracks if name not in remote]
    calls = [
        (
            run_track,
            {
                "name": name,
                "params": {**tracks[name], "max_workers": workers},
                "deployment": transfer_deployment if name in remote else None,
            },
        )
        for name in order
    ]
    # Every track runs at once, and every training takes one of `workers` compute slots
    # (ecgops.orchestration.slots, by pipeline.slot_priority): one track after another, each
    # track's tail ran on one core while the other idled (quick profile, 2 cores: 40 min for
    # 2 x 47 min of CPU). A remote track (the GPU deployment) takes no local slot.
    logger.info("tracks %s at once, %d trainings at a time over all", order, workers)
    with slots_open(workers, cfg.pipeline.slot_priority):
        outcomes = run_concurrently(calls, cfg, len(order))
    raise_on_failures(outcomes, "pipeline trainings")
    trained = {name: o.value for name, o in zip(order, outcomes, strict=True)}

    registry = (
        evaluate_and_register(
            profile=cfg.profile, tasks=tasks, promote=plan.promote, schemes=schemes
        )
        if plan.register_challengers
        else {}
    )
    timing.write_file(cfg, "pipeline")  # the report's "Where the time goes" reads it
    written = call(write_report, cfg) if plan.report else []
    return {"data": data, "trained": trained, "registry": registry, "report": written}
