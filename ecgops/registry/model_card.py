"""Model card (markdown) of a registered version, usually the champion.

The card states what the model is, which data version and split it was trained and evaluated
on, its metrics on both split schemes where the same model was trained on both (the metrics
files), the gate's numbers, its input/output contract, intended use and limitations. It is
written to ``<outputs>/model_cards/{task}.md``, logged to the version's run as the artifact
``model_card/<model>-v<version>.md`` and set as the version's description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.errors import RegistryError
from ecgops.io import write_text
from ecgops.registry import drift
from ecgops.registry.client import CHAMPION, alias_version, mlflow_client, registered_model_name

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")
TASK_TEXT = {
    "ptb": "healthy vs myocardial infarction (MI), one heartbeat at a time",
    "mitbih": "AAMI heartbeat classes N (normal), S (supraventricular ectopic), "
    "V (ventricular ectopic), F (fusion), Q (paced / unclassifiable)",
}
SCHEME_TEXT = {
    "beat": "beat split: stratified random beats (the study's; beats of one patient can be in "
    "training and test, so its scores are optimistic)",
    "patient": "patient split: PTB grouped by patient (no patient in two parts); MIT-BIH the "
    "de Chazal DS1 -> DS2 inter-record split (records 201 and 202 are one subject); the honest "
    "estimate for new patients",
}


def card_path(cfg: Config, task: str) -> Path:
    """``<outputs>/model_cards/{task}.md``."""
    return cfg.path("outputs") / "model_cards" / f"{task}.md"


def metrics_rows(cfg: Config, task: str, run_id: str, run_metrics: dict[str, float]) -> list[dict]:
    """Metrics of this model on both split schemes.

    The metrics file whose ``mlflow_run_id`` is the version's run gives the model's name; the
    same name's file in the other scheme gives the other split's numbers. Without metrics
    files the run's own ``val_*`` / ``test_*`` metrics are used.

    Returns:
        Rows ``{"scheme", "part", metric: value}``.
    """
    from ecgops.evaluation.results import load_all_metrics

    try:
        records = [r for r in load_all_metrics(cfg) if r.get("task") == task]
    except (OSError, ValueError):
        records = []
    own = next((r for r in records if r.get("mlflow_run_id") == run_id), None)
    rows = []
    if own is not None:
        same = [r for r in records if r.get("name") == own.get("name")]
        for rec in sorted(same, key=lambda r: r.get("scheme") != own.get("scheme")):
            for part in ("val", "test"):
                if rec.get(part):
                    rows.append({"scheme": rec.get("scheme"), "part": part, **rec[part]})
            cv = rec.get("cv") or {}
            if "balanced_accuracy_mean" in cv:
                rows.append(
                    {
                        "scheme": rec.get("scheme"),
                        "part": f"{cv.get('folds', '?')}-fold grouped CV (mean)",
                        "balanced_accuracy": cv["balanced_accuracy_mean"],
                    }
                )
    if not rows:
        for part in ("val", "test"):
            values = {
                m: run_metrics[f"{part}_{m}"] for m in METRICS if f"{part}_{m}" in run_metrics
            }
            if values:
                rows.append({"scheme": None, "part": part, **values})
    return rows


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "-"


def render_model_card(facts: dict[str, Any]) -> str:
    """The markdown card from the facts gathered by :func:`gather_facts`."""
    lines = [
        *_header_lines(facts),
        *_metric_lines(facts),
        *_gate_lines(facts),
        *_training_data_lines(facts),
        *_usage_lines(facts),
    ]
    return "\n".join(lines)


def _header_lines(facts: dict[str, Any]) -> list[str]:
    """Title, aliases and the facts table (task, classes, run, data, split, code, selection)."""
    task, names = facts["task"], facts["class_names"]
    scheme = facts.get("split_scheme") or "?"
    return [
        f"# Model card: {facts['model']} version {facts['version']}",
        "",
        f"Aliases: {', '.join(facts.get('aliases') or []) or 'none'}. "
        f"Generated {facts['generated']}.",
        "",
        "| | |",
        "|---|---|",
        f"| task | `{task}`: {TASK_TEXT.get(task, task)} |",
        "| classes | " + ", ".join(f"{i} = {n}" for i, n in enumerate(names)) + " |",
        f"| MLflow run | {facts.get('run_name') or ''} (`{facts.get('run_id')}`) |",
        f"| data version | `{facts.get('data_version', 'unknown')}` (md5 of the beat table, DVC) |",
        f"| split | {SCHEME_TEXT.get(scheme, scheme)} |",
        f"| code | git `{facts.get('git_commit', 'unknown')}`, profile "
        f"`{facts.get('profile', '?')}`, seed {facts.get('seed', '?')} |",
        f"| selected by | `{facts.get('select_metric')}` = {_fmt(facts.get('select_value'))} "
        "(validation part, never test) |",
        "",
        "## Metrics",
        "",
    ]


def _metric_lines(facts: dict[str, Any]) -> list[str]:
    """The run's metrics per split and part."""
    rows = facts.get("metrics") or []
    if not rows:
        return ["_No metrics recorded._"]
    scheme = facts.get("split_scheme") or "?"
    lines = [
        "| split | part | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for r in rows:
        lines.append(
            f"| {r.get('scheme') or scheme} | {r['part']} | "
            + " | ".join(_fmt(r.get(m)) for m in METRICS)
            + " |"
        )
    return lines


def _gate_lines(facts: dict[str, Any]) -> list[str]:
    """The last promotion decision that involved this version, with its gate-set scores."""
    gate = facts.get("gate") or {}
    if not gate:
        return []
    role = gate.get("gate.role", "challenger")  # this version's side in its last decision
    scores = ", ".join(
        f"{m} {_fmt(gate.get(f'gate.{role}.{m}'))}" for m in METRICS if f"gate.{role}.{m}" in gate
    )
    return [
        "",
        f"Last promotion gate: {gate.get('gate.decision', '?')} ({gate.get('gate.time', '')}),"
        f" this version as {role}, on {gate.get('gate.eval_data', 'the evaluation data')}: "
        f"{scores}.",
    ]


def _training_data_lines(facts: dict[str, Any]) -> list[str]:
    """Size, class balance and mean beat length of the training part."""
    stats, names = facts.get("train_stats"), facts["class_names"]
    if not stats:
        return []
    balance = ", ".join(
        f"{names[i] if i < len(names) else i} {100 * s:.1f} %"
        for i, s in enumerate(stats["class_balance"])
    )
    return [
        "",
        "## Training data",
        "",
        f"{stats['n']} beats; class balance {balance}; mean beat length "
        f"{stats['means']['length']:.0f} samples.",
    ]


def _usage_lines(facts: dict[str, Any]) -> list[str]:
    """Input and output, intended use and limitations."""
    task, names = facts["task"], facts["class_names"]
    return [
        "",
        "## Input and output",
        "",
        "Input: rows of 187 values in [0, 1], one heartbeat each (Kachuee et al. 2018): one lead "
        "resampled to 125 Hz, min-max normalised per 10 s window, from an R-peak for 1.2 x the "
        "window's median RR interval, zero-padded at the end. A 188th column (the label) is "
        "ignored. Rows with another width, NaN/inf or values outside [0, 1] (beyond a "
        f"{facts.get('tolerance', 0.05)} tolerance) are refused with a clear error. A model "
        "that needs the beat's RR context (its metadata lists `context_columns`) also needs "
        "those columns and refuses rows without them.",
        "",
        "Output per row: `pred` (class index), `pred_name`, `p_0` ... "
        f"`p_{len(names) - 1}` (class probabilities, calibrated on the validation part when "
        "the metadata's `ecgops.calibration` says so). Whole records: `ecgops predict --task "
        f"{task} --record PATH` extracts the beats the same way and aggregates their "
        "probabilities per record.",
        "",
        "## Intended use",
        "",
        "Research, teaching and benchmarking of ECG heartbeat classification and of the MLOps "
        "platform around it. **Not a medical device**: not validated for diagnosis, triage or "
        "any clinical decision, and not to be used on patients.",
        "",
        "## Limitations",
        "",
        "- One lead per beat (PTB: lead II; MIT-BIH: MLII, V5 on records without MLII), unless "
        "the model is a multi-lead one; no patient information is seen.",
        "- Beats at 125 Hz, 187 samples (1.5 s), normalised per window: absolute amplitude "
        "(e.g. ST elevation in mV) is lost; longer beats are cut.",
        "- Few patients: MIT-BIH has 47 subjects; the PTB data here is a PTB-XL subset (and the "
        "PTB Diagnostic sample). Scores on the beat split are optimistic; the patient split is "
        "the estimate for new patients.",
        "- Class imbalance: rare classes (S, F; MI in PTB-XL) have wider error margins than the "
        "averages show; the promotion gate's bootstrap intervals show how wide.",
        "",
    ]


def gather_facts(cfg: Config, task: str, version: str | None = None) -> dict[str, Any]:
    """Everything the card states, read from the registry, the run and the metrics files.

    Raises:
        RegistryError: no such version / no champion.
    """
    from datetime import UTC, datetime

    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task)
    if version is None:
        mv = alias_version(client, name, CHAMPION)
        if mv is None:
            raise RegistryError(f"{name}: no champion to describe")
    else:
        mv = client.get_model_version(name, str(version))
    tags = dict(mv.tags or {})
    run_metrics: dict[str, float] = {}
    run_tags: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        run_metrics, run_tags = dict(run.data.metrics), dict(run.data.tags)
    facts: dict[str, Any] = {
        "model": name,
        "version": mv.version,
        "aliases": list(mv.aliases or []),
        "task": task,
        "class_names": cfg.class_names(task),
        "run_id": mv.run_id,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics_rows(cfg, task, mv.run_id or "", run_metrics),
        "gate": {k: v for k, v in tags.items() if k.startswith("gate.")},
        "train_stats": drift.from_tag(tags.get(drift.STATS_TAG)),
    }
    for key in (
        "run_name",
        "split_scheme",
        "data_version",
        "git_commit",
        "profile",
        "seed",
        "select_metric",
        "select_value",
    ):
        facts[key] = tags.get(key) or run_tags.get(key) or run_tags.get(f"mlflow.{key}")
    facts["run_name"] = facts["run_name"] or run_tags.get("mlflow.runName")
    return facts


def write_model_card(cfg: Config, task: str, version: str | None = None) -> Path:
    """Write the card of a version (default: the champion) and attach it to the version.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        version: registered version (default: the champion).

    Returns:
        Path of ``<outputs>/model_cards/{task}.md``.
    """
    facts = gather_facts(cfg, task, version)
    text = render_model_card(facts)
    path = write_text(text, card_path(cfg, task))
    client = mlflow_client(cfg)
    if facts.get("run_id"):
        client.log_text(
            facts["run_id"], text, f"model_card/{facts['model']}-v{facts['version']}.md"
        )
    client.update_model_version(facts["model"], facts["version"], description=text)
    return path
