"""Flow ``evaluate_and_register``: register each task's best run as ``challenger``, run the gate.

The best run is chosen on the validation part (``registry.select_metric``), never on test. The
registration is cached on the metrics files it chose from, so a rerun with nothing newly
trained registers no duplicate version. The promotion gate then decides whether the challenger
becomes ``champion``; its decision is published as a markdown artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import Config, load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration.concurrency import call
from ecgops.orchestration.tasks import plain_task, stage_task
from ecgops.registry.candidates import selection_scheme
from ecgops.registry.client import MORPHOLOGY, model_kinds


@stage_task("register", kind="registry", task_run_name="register-{task}-{model_kind}")
def register_challenger(
    cfg: Config, task: str, scheme: str | None = None, model_kind: str = MORPHOLOGY
) -> dict[str, Any] | None:
    """Register the task's best run of a model kind as a version with the ``challenger`` alias."""
    from ecgops.registry.register import register_best

    logger = get_run_logger()
    version = register_best(cfg, task, scheme, kind=model_kind)
    if version is None:
        logger.warning("%s: no %s candidate run to register", task, model_kind)
        return None
    plain = art.model_version_summary(version)
    logger.info(
        "%s: registered %s version %s (run %s) as challenger",
        task,
        plain["name"],
        plain["version"],
        plain["run_id"],
    )
    return plain


@plain_task("promote", kind="registry", task_run_name="promote-{task}-{model_kind}")
def promotion_gate(
    cfg: Config, task: str, dry_run: bool = False, model_kind: str = MORPHOLOGY
) -> dict[str, Any]:
    """Run the promotion gate: the challenger becomes champion only if it passes."""
    from ecgops.registry.promote import promote as gate

    decision = art.as_plain(gate(cfg, task, dry_run=dry_run, kind=model_kind))
    get_run_logger().info("%s (%s): promotion decision %s", task, model_kind, decision)
    return decision


@flow(name="evaluate-and-register")
def evaluate_and_register(
    profile: str | None = None,
    tasks: list[str] | None = None,
    scheme: str | None = None,
    promote: bool = True,
    schemes: list[str] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Register the best run per task as challenger, then run the promotion gate.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        tasks: ``ptb`` and/or ``mitbih`` (default: ``pipeline.tasks``).
        scheme: choose among runs of this split scheme only (default:
            ``registry.select_scheme`` when it is among ``schemes``).
        promote: run the promotion gate after registering.
        schemes: the split schemes the calling pipeline trained (default: all).
        dry_run: the gate shows its decision but changes no alias.

    Returns:
        Per task: the registered version and the gate's decision.
    """
    cfg = load_config(profile=profile)
    summary: dict[str, Any] = {}
    for name in tasks or cfg.pipeline.tasks:
        for kind in model_kinds(name):  # morphology-only beats; records with RR context
            version = call(
                register_challenger,
                cfg,
                task=name,
                scheme=selection_scheme(cfg, scheme, schemes),
                model_kind=kind,
            )
            decision = (
                call(promotion_gate, cfg, task=name, dry_run=dry_run, model_kind=kind)
                if (promote and version is not None)
                else None
            )
            label = name if kind == MORPHOLOGY else f"{name}-{kind}"
            summary[label] = {"challenger": version, "decision": decision}
    art.publish_markdown(
        art.registry_markdown(summary),
        key=art.artifact_key("registry-decisions"),
        description="Registered challengers and promotion decisions",
    )
    return summary
