"""Prefect 3 flows: composition, retries, caching and artifacts around ecgops functions.

- ``ingest``: raw records (or Kaggle CSVs) -> validated beat tables -> splits -> features;
- ``train_classical``, ``train_deep``, ``pretrain_and_transfer``: the three training tracks;
- ``evaluate_and_register``: register the best run per task as ``challenger``, run the gate;
- ``pipeline``: ingest -> the three tracks -> evaluate_and_register -> report;
- ``sweep``: a small hyperparameter sweep on a Dask cluster (prefect-dask).

The work itself lives in ``ecgops``; each task's cache policy comes from the stage table
(:mod:`ecgops.stages`, which also generates dvc.yaml) and the shared orchestration policy
(retries, cache keys, concurrency, timing, artifacts) from :mod:`ecgops.orchestration`.
``flows`` imports ``ecgops``, never the other way round. Deployments: ``prefect.yaml``.
"""

from __future__ import annotations

from ecgops.config import Config
from ecgops.orchestration import concurrency
from ecgops.orchestration.tasks import plain_task


@plain_task("prepare-tracking", kind="io")
def prepare_tracking(cfg: Config, tasks: list[str]) -> str:
    """Create the MLflow store and experiments before concurrent trainings (retried if down)."""
    return concurrency.prepare_tracking(cfg, tasks)
