"""Flow ``sweep``: a small hyperparameter sweep of a classical model on a Dask cluster.

Scale-out beyond one machine: each trial is a ``train-classical`` task run on a Dask worker
(prefect-dask's ``DaskTaskRunner``). By default a local cluster of ``n_workers`` processes
with one thread each; pass ``address`` (or set ``ECGOPS_DASK_ADDRESS``) to use a running
scheduler (``dask scheduler`` + ``dask worker tcp://HOST:8786`` on other machines). Trials log
to a separate MLflow experiment (``<prefix>-sweep-<task>``) and write their metrics under
``outputs/sweeps/``, so they never compete with the pipeline's runs in the registry.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger

from ecgops.config import load_config
from ecgops.orchestration import artifacts as art
from ecgops.orchestration import sweeps
from ecgops.orchestration.concurrency import call, dask_runner, raise_on_failures, run_concurrently
from flows import prepare_tracking
from flows.train_classical import fit_classical


@flow(name="sweep")
def sweep(
    profile: str | None = None,
    task: str = "ptb",
    scheme: str = "beat",
    model: str = "lgbm",
    input: str = "raw",
    param: str = "num_leaves",
    values: list[Any] | None = None,
    n_workers: int = 2,
    address: str | None = None,
) -> dict[str, Any]:
    """Train one classical model per value of one hyperparameter; report the best.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default: ``$ECGOPS_PROFILE`` / params.yaml).
        task: ``ptb`` or ``mitbih``.
        scheme: ``beat`` or ``patient``.
        model: ``lr``, ``rf`` or ``lgbm``.
        input: ``raw`` or ``features``.
        param: a hyperparameter of ``classical.<model>`` in params.yaml.
        values: the values to try (default: ``sweep.grids`` in params.yaml).
        n_workers: local cluster size (processes, one thread each).
        address: a running Dask scheduler instead of a local cluster.

    Returns:
        ``param``, the trials (value, metrics record) and the best trial by the registry's
        selection metric on the validation part.
    """
    cfg = load_config(profile=profile)
    values = list(values or sweeps.sweep_values(cfg, model, param))
    if not values:
        raise ValueError(f"no values to sweep for {model}.{param}: pass `values`")
    name = art.artifact_key("sweep", task, scheme, model, input, param)
    trials = [
        load_config(
            profile=cfg.profile, overrides=sweeps.sweep_overrides(cfg, model, param, v, name)
        )
        for v in values
    ]
    calls = [
        (fit_classical, {"cfg": c, "task": task, "scheme": scheme, "model": model, "input": input})
        for c in trials
    ]
    runner = dask_runner(n_workers, address or os.environ.get("ECGOPS_DASK_ADDRESS"))
    get_run_logger().info("sweep %s over %s on %s", param, values, type(runner).__name__)
    call(prepare_tracking, trials[0], tasks=[task])  # the sweep's own experiment
    outcomes = run_concurrently(calls, cfg, n_workers, runner=runner)
    result = sweeps.sweep_summary(param, values, outcomes, cfg.registry.select_metric)
    art.publish_markdown(sweeps.sweep_markdown(result), key=name, description=f"Sweep of {param}")
    art.link_mlflow_runs(art.mlflow_run_ids(t["record"] for t in result["trials"]))
    raise_on_failures(outcomes, "sweep")
    return result
