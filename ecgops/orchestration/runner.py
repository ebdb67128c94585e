"""Running the pipeline flow from the CLI, and the flows' small shared steps.

``ecgops pipeline`` loads the flow by its entrypoint, the way a Prefect worker does
(``flows/pipeline.py:pipeline``, as in prefect.yaml), so the package never imports ``flows``:
``flows`` composes ``ecgops``, never the other way round.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecgops.codegraph import PROJECT_DIR
from ecgops.config import Config
from ecgops.paths import params_dir

PIPELINE_ENTRYPOINT = "flows/pipeline.py:pipeline"
"""The pipeline flow, as prefect.yaml's deployments name it (relative to the code checkout)."""


def write_param_sections(cfg: Config) -> list[Path]:
    """Write ``<outputs>/params/`` and ``<outputs>/code/`` as DVC's ``params`` stage does.

    Args:
        cfg: the configuration.

    Returns:
        The written files (:func:`ecgops.param_files.write_sections`,
        :func:`ecgops.code_files.write_code_files`).
    """
    from ecgops.code_files import write_code_files
    from ecgops.param_files import write_sections

    return [*write_sections(cfg, params_dir(cfg)), *write_code_files(cfg)]


@contextmanager
def _importable(folder: Path) -> Iterator[None]:
    """``folder`` on ``sys.path`` for the duration (the flows import each other as ``flows.*``)."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def load_flow(entrypoint: str = PIPELINE_ENTRYPOINT, code_dir: Path = PROJECT_DIR) -> Any:
    """Load a flow from its entrypoint (``path/to/file.py:flow_function``).

    Args:
        entrypoint: the flow's entrypoint, relative to ``code_dir``.
        code_dir: the checkout holding ``flows/`` (beside the ``ecgops`` package).

    Returns:
        The Prefect flow object.

    Raises:
        FileNotFoundError: the entrypoint's file does not exist.
    """
    from prefect.flows import load_flow_from_entrypoint

    path, _, name = entrypoint.rpartition(":")
    script = code_dir / path
    if not script.is_file():
        raise FileNotFoundError(f"{script}: no flow file for entrypoint {entrypoint!r}")
    with _importable(code_dir):
        return load_flow_from_entrypoint(f"{script}:{name}", use_placeholder_flow=False)


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
    pipeline = load_flow(PIPELINE_ENTRYPOINT)
    with _importable(PROJECT_DIR):  # lazy imports of the flows while they run
        return pipeline(profile=profile, **params)
