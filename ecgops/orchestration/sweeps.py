"""Hyperparameter sweeps of a classical model: default grids, per-trial config, summary.

Each trial is the pipeline's ``train-classical`` task on a config whose only differences are
the swept value, its own outputs folder and its own MLflow experiment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ecgops.config import Config
from ecgops.orchestration.artifacts import fmt
from ecgops.orchestration.concurrency import Outcome
from ecgops.paths import sweep_dir


def sweep_values(cfg: Config, model: str, param: str) -> list[Any]:
    """The default grid of a (model, hyperparameter) pair: ``sweep.grids`` in params.yaml.

    Args:
        cfg: configuration.
        model: ``lr``, ``rf`` or ``lgbm``.
        param: a field of ``classical.<model>``.

    Returns:
        The values (empty when params.yaml has no grid for the pair).
    """
    return list(cfg.sweep.grids.get(model, {}).get(param, []))


def sweep_overrides(cfg: Config, model: str, param: str, value: Any, sweep: str) -> dict[str, Any]:
    """Config overrides of one sweep trial: the value, its own outputs and MLflow experiment.

    Args:
        cfg: the base configuration.
        model: ``lr``, ``rf`` or ``lgbm``.
        param: a field of ``classical.<model>``.
        value: the value to try.
        sweep: the sweep's name (a folder under ``<outputs>/sweeps``).

    Returns:
        A nested dict for ``load_config(overrides=...)``.

    Raises:
        ValueError: the model or hyperparameter is unknown.
    """
    section = getattr(cfg.classical, model, None)
    if (
        section is None
        or not hasattr(section, "model_fields")
        or param not in type(section).model_fields
    ):
        raise ValueError(f"params.yaml has no classical.{model}.{param} to sweep")
    outputs = sweep_dir(cfg, sweep, param, value)
    return {
        "classical": {model: {param: value}},
        "paths": {"outputs": str(outputs)},
        "tracking": {"experiment_prefix": f"{cfg.tracking.experiment_prefix}-sweep"},
    }


def sweep_summary(
    param: str, values: Sequence[Any], outcomes: Sequence[Outcome], metric: str
) -> dict[str, Any]:
    """The trials of a sweep and the best one by ``metric`` on the validation part."""
    trials = [
        {"value": v, "record": o.value if o.ok else None, "error": o.error}
        for v, o in zip(values, outcomes, strict=True)
    ]
    scored = [t for t in trials if t["record"] and metric in (t["record"].get("val") or {})]
    best = max(scored, key=lambda t: t["record"]["val"][metric], default=None)
    return {"param": param, "metric": metric, "trials": trials, "best": best}


def sweep_markdown(summary: Mapping[str, Any]) -> str:
    """Markdown table of a sweep's trials (validation and test scores, MLflow run)."""
    param, metric = summary["param"], summary["metric"]
    lines = [
        f"# Sweep of {param}",
        "",
        f"| {param} | val {metric} | test {metric} | MLflow run |",
        "|---|---|---|---|",
    ]
    for trial in summary["trials"]:
        record = trial["record"] or {}
        lines.append(
            f"| {trial['value']} | {fmt((record.get('val') or {}).get(metric))}"
            f" | {fmt((record.get('test') or {}).get(metric))}"
            f" | {record.get('mlflow_run_id') or trial['error'] or ''} |"
        )
    best = summary.get("best")
    lines += ["", f"**Best:** {param} = {best['value']}" if best else "**Best:** none"]
    return "\n".join(lines) + "\n"
