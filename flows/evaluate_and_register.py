"""Flow ``evaluate_and_register``: register each task's best run as ``challenger``, run the gate.

The best run is chosen on the validation part (``registry.select_metric``), never on test. The
registration is cached on the metrics files it chose from, so a rerun with nothing newly
trained registers no duplicate version. The promotion gate then decides whether the challenger
becomes ``champion``; its decision is published as a markdown artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ecgops import orchestration as orc
from ecgops.config import Config, load_config


@task(
    name="register",
    task_run_name="register-{task}",
    cache_policy=orc.InputsAndFiles(
        code=orc.REGISTRY_CODE,
        sections=("registry", "tracking"),
        reads=lambda cfg, i: [cfg.path("outputs") / "metrics" / i["task"]],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("registry"),
)
def register_challenger(cfg: Config, task: str, scheme: str | None = None) -> dict[str, Any] | None:
    """Register the task's best run as a new version with the ``challenger`` alias."""
    from ecgops.registry.register import register_best

    logger = get_run_logger()
    version = register_best(cfg, task, scheme)
    if version is None:
        logger.warning("%s: no candidate run to register", task)
        return None
    plain = orc.model_version_summary(version)
    logger.info(
        "%s: registered %s version %s (run %s) as challenger",
        task,
        plain["name"],
        plain["version"],
        plain["run_id"],
    )
    return plain


@task(
    name="promote",
    task_run_name="promote-{task}",
    cache_policy=NO_CACHE,
    **orc.retry_options("registry"),
)
def promotion_gate(cfg: Config, task: str, dry_run: bool = False) -> dict[str, Any]:
    """Run the promotion gate: the challenger becomes champion only if it passes."""
    from ecgops.registry.promote import promote as gate

    decision = orc.as_plain(gate(cfg, task, dry_run=dry_run))
    get_run_logger().info("%s: promotion decision %s", task, decision)
    return decision


@flow(name="evaluate-and-register")
def evaluate_and_register(
    profile: str | None = None,
    tasks: list[str] | None = None,
    scheme: str | None = None,
    promote: bool = True,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Register the best run per task as challenger, then run the promotion gate.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        tasks: ``ptb`` and/or ``mitbih`` (default: ``pipeline.tasks``).
        scheme: choose among runs of this split scheme only (default: any).
        promote: run the promotion gate after registering.
        dry_run: the gate shows its decision but changes no alias.

    Returns:
        Per task: the registered version and the gate's decision.
    """
    cfg = load_config(profile=profile)
    summary: dict[str, Any] = {}
    for name in tasks or cfg.pipeline.tasks:
        version = orc.call(register_challenger, cfg, task=name, scheme=scheme)
        decision = (
            orc.call(promotion_gate, cfg, task=name, dry_run=dry_run)
            if (promote and version is not None)
            else None
        )
        summary[name] = {"challenger": version, "decision": decision}
    orc.publish_markdown(
        orc.registry_markdown(summary),
        key=orc.artifact_key("registry-decisions"),
        description="Registered challengers and promotion decisions",
    )
    return summary
