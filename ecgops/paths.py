"""One path helper per pipeline artefact: where each stage reads and writes.

Every helper takes anything with a ``path(name)`` method (a :class:`ecgops.config.Config`, or
the stage table's relative view used to write ``dvc.yaml``) and the artefact's coordinates, so
the Prefect flows, the CLI commands and the generated ``dvc.yaml`` name the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class HasPaths(Protocol):
    """Anything that resolves a ``paths`` entry of params.yaml (``Config.path``)."""

    root: Path

    def path(self, name: str) -> Path:
        """The location of a ``paths`` entry (``processed``, ``outputs``, ...)."""
        ...


def raw_dir(cfg: HasPaths) -> Path:
    """The project's copy of the raw WFDB records (``data/raw``)."""
    return cfg.path("raw")


def beat_table(cfg: HasPaths, task: str) -> Path:
    """A task's validated heartbeat table (``data/processed/{task}.parquet``)."""
    return cfg.path("processed") / f"{task}.parquet"


def beat_summary(cfg: HasPaths, task: str) -> Path:
    """The build summary beside a beat table (``data/processed/{task}.summary.json``)."""
    return cfg.path("processed") / f"{task}.summary.json"


def split_table(cfg: HasPaths, task: str) -> Path:
    """A task's split assignments (``data/splits/{task}.parquet``)."""
    return cfg.path("splits") / f"{task}.parquet"


def split_summary(cfg: HasPaths, task: str) -> Path:
    """The split's summary: part sizes, its table's md5 (``data/splits/{task}.summary.json``)."""
    return cfg.path("splits") / f"{task}.summary.json"


def gate_file(cfg: HasPaths, task: str) -> Path:
    """The sealed gate set's patients / records and counts (``data/splits/{task}.gate.json``)."""
    return cfg.path("splits") / f"{task}.gate.json"


def feature_table(cfg: HasPaths, task: str) -> Path:
    """A task's time-series features (``data/features/{task}.parquet``)."""
    return cfg.path("features") / f"{task}.parquet"


def params_dir(cfg: HasPaths) -> Path:
    """The resolved params per section, the DVC stages' parameter deps (``outputs/params``)."""
    return cfg.path("outputs") / "params"


def params_file(cfg: HasPaths, section: str) -> Path:
    """One section's resolved params (``outputs/params/{section}.json``)."""
    return params_dir(cfg) / f"{section}.json"


def code_dir(cfg: HasPaths) -> Path:
    """The md5 of each stage's source files, the DVC stages' code deps (``outputs/code``)."""
    return cfg.path("outputs") / "code"


def code_file(cfg: HasPaths, stage: str) -> Path:
    """One stage's source files and their md5 (``outputs/code/{stage}.json``)."""
    return code_dir(cfg) / f"{stage}.json"


def validation_dir(cfg: HasPaths, task: str) -> Path:
    """A beat table's Great Expectations result and data docs (``outputs/validation/{task}``)."""
    return cfg.path("outputs") / "validation" / task


def metrics_dir(cfg: HasPaths, task: str | None = None) -> Path:
    """Every metrics file (``outputs/metrics``), or one task's (``outputs/metrics/{task}``)."""
    root = cfg.path("outputs") / "metrics"
    return root / task if task else root


def metrics_file(cfg: HasPaths, task: str, scheme: str, name: str) -> Path:
    """One run's metrics record (``outputs/metrics/{task}/{scheme}/{name}.json``)."""
    return metrics_dir(cfg, task) / scheme / f"{name}.json"


def plots_dir(cfg: HasPaths, task: str, scheme: str, name: str) -> Path:
    """One run's DVC plot tables (``outputs/plots/{task}/{scheme}/{name}``)."""
    return cfg.path("outputs") / "plots" / task / scheme / name


def figures_dir(cfg: HasPaths, task: str, scheme: str, name: str) -> Path:
    """One run's figures (``outputs/figures/{task}/{scheme}/{name}``)."""
    return cfg.path("outputs") / "figures" / task / scheme / name


def encoder_file(cfg: HasPaths, method: str, scheme: str) -> Path:
    """A pretrained encoder (``models/encoders/{method}-{scheme}.pt``)."""
    return cfg.path("models") / "encoders" / f"{method}-{scheme}.pt"


def registry_dir(cfg: HasPaths) -> Path:
    """The registry's decisions and model cards (``outputs/registry``)."""
    return cfg.path("outputs") / "registry"


def timings_file(cfg: HasPaths, name: str = "pipeline") -> Path:
    """Wall and CPU time per task run of a flow (``outputs/timings/{name}.json``)."""
    return cfg.path("outputs") / "timings" / f"{name}.json"


def sweep_dir(cfg: HasPaths, sweep: str, param: str, value: object) -> Path:
    """The outputs of one sweep trial (``outputs/sweeps/{sweep}/{param}-{value}``)."""
    return cfg.path("outputs") / "sweeps" / sweep / f"{param}-{value}"


def report_dir(cfg: HasPaths) -> Path:
    """The results report and its figures (``<project>/reports``, beside the README)."""
    return cfg.root / "reports"
