"""Flow ``ingest``: raw records (or Kaggle CSVs) -> validated beat tables -> splits -> features.

The same functions and outputs as the DVC data stages (both from the stage table,
ecgops.stages). A table that fails its Great Expectations suite stops the flow at once (no
retry: bad data does not heal) and publishes the validation result as a markdown artifact;
nothing downstream runs and nothing is overwritten.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import Config, load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration.concurrency import call
from ecgops.orchestration.runner import write_param_sections
from ecgops.orchestration.tasks import plain_task, stage_task
from ecgops.paths import beat_table


@plain_task("params", kind="data")
def write_params(cfg: Config) -> list[str]:
    """Write the resolved params per section (the deps of the DVC stages)."""
    return [str(p) for p in write_param_sections(cfg)]


@stage_task("import-raw", kind="io")
def import_raw(cfg: Config) -> str:
    """Copy (and checksum) the raw WFDB records into the project's data/raw."""
    from ecgops.data.raw import import_raw as copy_raw

    return str(copy_raw(cfg))


@stage_task("import-kaggle", kind="io")
def import_kaggle(cfg: Config, directory: str) -> dict[str, str]:
    """Import the Kaggle CSVs of a directory as validated beat tables."""
    from ecgops.data.kaggle import import_kaggle as read_kaggle

    with art.validation_artifact("kaggle"):
        return {t: str(p) for t, p in read_kaggle(cfg, directory).items()}


@stage_task("build", kind="data", task_run_name="build-{task}")
def build(cfg: Config, task: str) -> str:
    """Build, validate and atomically write one task's beat table."""
    from ecgops.data.build import build_task

    with art.validation_artifact(task):
        return str(build_task(cfg, task))


@stage_task("validate", kind="data", task_run_name="validate-{task}")
def validate(cfg: Config, task: str) -> dict[str, Any]:
    """Validate a beat table (GX result JSON and data docs under outputs/validation/)."""
    from ecgops.data.validation import validate_task

    with art.validation_artifact(task):
        report = validate_task(cfg, task)
    art.publish_markdown(
        art.validation_markdown(task, report),
        key=art.artifact_key("validation", task),
        description=f"Great Expectations validation of the {task} beat table",
    )
    return art.as_plain(report)


@stage_task("split", kind="data", task_run_name="split-{task}")
def split(cfg: Config, task: str) -> str:
    """Write the beat and patient split assignments of a task."""
    from ecgops.data.splits import make_splits

    return str(make_splits(cfg, task))


@stage_task("features", kind="data", task_run_name="features-{task}")
def features(cfg: Config, task: str) -> str:
    """Extract the time-series features of a task's beats."""
    from ecgops.features.tsfeatures import build_features

    return str(build_features(cfg, task))


@flow(name="ingest")
def ingest(
    profile: str | None = None,
    tasks: list[str] | None = None,
    kaggle_dir: str | None = None,
    with_features: bool = True,
) -> dict[str, Any]:
    """Prepare validated, split datasets (and features) for the trainings.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        tasks: ``ptb`` and/or ``mitbih`` (default: ``pipeline.tasks``).
        kaggle_dir: import the Kaggle CSVs of this directory instead of the raw records.
        with_features: also extract time-series features (needed by ``features`` inputs).

    Returns:
        Per task: the validation summary and the paths written.
    """
    cfg = load_config(profile=profile)
    tasks = list(tasks or cfg.pipeline.tasks)
    logger = get_run_logger()
    logger.info("ingest %s (profile %s, root %s)", ", ".join(tasks), cfg.profile, cfg.root)
    call(write_params, cfg)
    if kaggle_dir:
        imported = call(import_kaggle, cfg, directory=str(kaggle_dir))
        tasks = [t for t in tasks if t in imported]
    else:
        call(import_raw, cfg)
    summary: dict[str, Any] = {}
    for name in tasks:
        built = None if kaggle_dir else call(build, cfg, task=name)
        report = call(validate, cfg, task=name)
        summary[name] = {
            "table": built or str(beat_table(cfg, name)),
            "validation": report,
            "splits": call(split, cfg, task=name),
            "features": call(features, cfg, task=name) if with_features else None,
        }
        logger.info("%s ready: %s rows", name, report.get("n_rows"))
    return summary
