"""Flow ``ingest``: raw records (or Kaggle CSVs) -> validated beat tables -> splits -> features.

The same functions and outputs as the DVC data stages. A table that fails its Great
Expectations suite stops the flow at once (no retry: bad data does not heal) and publishes the
validation result as a markdown artifact; nothing downstream runs and nothing is overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ecgops import orchestration as orc
from ecgops.config import Config, load_config


def _raw_folders(cfg: Config, inputs: Mapping[str, Any]) -> list[Path]:
    from ecgops.data.build import source_folder, task_sources

    return [source_folder(cfg, s) for s in task_sources(cfg, inputs["task"])]


def _kaggle_files(cfg: Config, inputs: Mapping[str, Any]) -> list[Path]:
    return sorted(Path(inputs["directory"]).glob("*.csv"))


@task(name="params", cache_policy=NO_CACHE, **orc.retry_options("data"))
def write_params(cfg: Config) -> list[str]:
    """Write the resolved params per section (the deps of the DVC stages)."""
    return [str(p) for p in orc.write_param_sections(cfg)]


@task(
    name="import-raw",
    cache_policy=orc.InputsAndFiles(
        code=orc.DATA_CODE,
        sections=("paths", "data"),
        reads=lambda cfg, _: [cfg.raw_source],
        writes=lambda cfg, _: [cfg.path("raw")],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("io"),
)
def import_raw(cfg: Config) -> str:
    """Copy (and checksum) the raw WFDB records into the project's data/raw."""
    from ecgops.data.raw import import_raw as copy_raw

    return str(copy_raw(cfg))


@task(
    name="import-kaggle",
    cache_policy=orc.InputsAndFiles(
        code=orc.DATA_CODE,
        sections=("data", "validation"),
        reads=_kaggle_files,
        writes=lambda cfg, _: [orc.table(cfg, "processed", t) for t in cfg.pipeline.tasks],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("io"),
)
def import_kaggle(cfg: Config, directory: str) -> dict[str, str]:
    """Import the Kaggle CSVs of a directory as validated beat tables."""
    from ecgops.data.kaggle import import_kaggle as read_kaggle

    with orc.validation_artifact("kaggle"):
        return {t: str(p) for t, p in read_kaggle(cfg, directory).items()}


@task(
    name="build",
    task_run_name="build-{task}",
    cache_policy=orc.InputsAndFiles(
        code=orc.DATA_CODE,
        sections=("data", "validation"),
        reads=_raw_folders,
        writes=lambda cfg, i: [orc.table(cfg, "processed", i["task"])],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("data"),
)
def build(cfg: Config, task: str) -> str:
    """Build, validate and atomically write one task's beat table."""
    from ecgops.data.build import build_task

    with orc.validation_artifact(task):
        return str(build_task(cfg, task))


@task(
    name="validate",
    task_run_name="validate-{task}",
    cache_policy=orc.InputsAndFiles(
        code=orc.DATA_CODE,
        sections=("validation",),
        reads=lambda cfg, i: [orc.table(cfg, "processed", i["task"])],
        writes=lambda cfg, i: [cfg.path("outputs") / "validation" / i["task"]],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("data"),
)
def validate(cfg: Config, task: str) -> dict[str, Any]:
    """Validate a beat table (GX result JSON and data docs under outputs/validation/)."""
    from ecgops.data.validation import validate_task

    with orc.validation_artifact(task):
        report = validate_task(cfg, task)
    orc.publish_markdown(
        orc.validation_markdown(task, report),
        key=orc.artifact_key("validation", task),
        description=f"Great Expectations validation of the {task} beat table",
    )
    return orc.as_plain(report)


@task(
    name="split",
    task_run_name="split-{task}",
    cache_policy=orc.InputsAndFiles(
        code=orc.DATA_CODE,
        sections=("splits", "data"),
        reads=lambda cfg, i: [orc.table(cfg, "processed", i["task"])],
        writes=lambda cfg, i: [orc.table(cfg, "splits", i["task"])],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("data"),
)
def split(cfg: Config, task: str) -> str:
    """Write the beat and patient split assignments of a task."""
    from ecgops.data.splits import make_splits

    return str(make_splits(cfg, task))


@task(
    name="features",
    task_run_name="features-{task}",
    cache_policy=orc.InputsAndFiles(
        code=orc.FEATURES_CODE,
        sections=("features", "data"),
        reads=lambda cfg, i: [orc.table(cfg, "processed", i["task"])],
        writes=lambda cfg, i: [orc.table(cfg, "features", i["task"])],
    ),
    persist_result=True,
    result_serializer=orc.RESULT_SERIALIZER,
    **orc.retry_options("data"),
)
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
    orc.call(write_params, cfg)
    if kaggle_dir:
        imported = orc.call(import_kaggle, cfg, directory=str(kaggle_dir))
        tasks = [t for t in tasks if t in imported]
    else:
        orc.call(import_raw, cfg)
    summary: dict[str, Any] = {}
    for name in tasks:
        built = None if kaggle_dir else orc.call(build, cfg, task=name)
        report = orc.call(validate, cfg, task=name)
        summary[name] = {
            "table": built or str(orc.table(cfg, "processed", name)),
            "validation": report,
            "splits": orc.call(split, cfg, task=name),
            "features": orc.call(features, cfg, task=name) if with_features else None,
        }
        logger.info("%s ready: %s rows", name, report.get("n_rows"))
    return summary
