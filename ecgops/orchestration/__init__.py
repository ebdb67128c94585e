"""What the Prefect flows in ``flows/`` share: the orchestration policy around ecgops functions.

The flows only compose ecgops functions; these modules hold the policy, so every flow retries,
caches, times and reports the same way:

- :mod:`~ecgops.orchestration.retries`: retry only where a retry can help (transient errors);
- :mod:`~ecgops.orchestration.caching`: cache keys and the cache policy of a stage, from the
  stage table (:mod:`ecgops.stages`);
- :mod:`~ecgops.orchestration.tasks`: the task decorators that apply both, and timing;
- :mod:`~ecgops.orchestration.concurrency`: one call, or independent calls at once, every
  outcome collected;
- :mod:`~ecgops.orchestration.timing`: wall and CPU time per task run;
- :mod:`~ecgops.orchestration.artifacts`: markdown artifacts, Prefect <-> MLflow links;
- :mod:`~ecgops.orchestration.sweeps`: sweep grids, trial configs and summaries;
- :mod:`~ecgops.orchestration.runner`: ``ecgops pipeline`` (the flow loaded by entrypoint).

Import these modules lazily from the CLI (they import prefect).
"""
