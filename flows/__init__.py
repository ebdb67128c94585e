"""Prefect 3 flows: composition, retries, caching and artifacts around ecgops functions.

- ``ingest``: raw records (or Kaggle CSVs) -> validated beat tables -> splits -> features;
- ``train_classical``, ``train_deep``, ``pretrain_and_transfer``: the three training tracks;
- ``evaluate_and_register``: register the best run per task as ``challenger``, run the gate;
- ``pipeline``: ingest -> the three tracks concurrently -> evaluate_and_register;
- ``sweep``: a small hyperparameter sweep on a Dask cluster (prefect-dask).

The work itself lives in ``ecgops``; the shared orchestration policy (retries, cache keys,
concurrency, artifacts) in :mod:`ecgops.orchestration`. Deployments: ``prefect.yaml``.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from ecgops import orchestration as orc
from ecgops.config import Config


@task(name="prepare-tracking", cache_policy=NO_CACHE, **orc.retry_options("io"))
def prepare_tracking(cfg: Config, tasks: list[str]) -> str:
    """Create the MLflow store and experiments before concurrent trainings (retried if down)."""
    return orc.prepare_tracking(cfg, tasks)
