"""The promotion gate, rollback and the model card, on a real MLflow registry."""

from __future__ import annotations

import json

import pytest
from fixtures_mlflow import fit_lr, fit_prior, log_run, xy

from ecgops.errors import RegistryError
from ecgops.registry.client import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    alias_version,
    mlflow_client,
    registered_model_name,
)
from ecgops.registry.promote import HISTORY_TAG, promote, rollback
from ecgops.registry.register import register_best

pytestmark = pytest.mark.integration


def aliases(cfg, task="ptb") -> dict[str, str | None]:
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task)
    return {
        a: getattr(alias_version(client, name, a), "version", None)
        for a in (CHALLENGER, CHAMPION, PREVIOUS_CHAMPION)
    }


def version_tags(cfg, version: str, task="ptb") -> dict[str, str]:
    client = mlflow_client(cfg)
    return client.get_model_version(registered_model_name(cfg, task), version).tags


def challenge(cfg, data, predictor, val_score, train=None, name="m"):
    """Log a run that the selection will pick, register it, return its version."""
    log_run(cfg, "ptb", predictor, data, name=name, val_score=val_score)
    train = data["train"] if train is None else train
    return register_best(cfg, "ptb", train_data=train).version


def test_first_challenger_that_passes_becomes_champion(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    assert promote(cfg, "ptb", eval_data=ptb["test"]).action == "no_challenger"
    v1 = challenge(cfg, ptb, fit_lr(ptb["train"]), 0.7)

    decision = promote(cfg, "ptb", eval_data=ptb["test"])

    assert decision.promoted and decision.action == "promoted" and decision.champion is None
    assert all(c.passed for c in decision.checks)
    assert {c.name for c in decision.checks} == {
        "load", "signature", "smoke", "size", "latency", "floors", "drift", "better"
    }  # fmt: skip
    assert aliases(cfg) == {CHALLENGER: None, CHAMPION: v1, PREVIOUS_CHAMPION: None}
    tags = version_tags(cfg, v1)
    assert tags["gate.decision"] == "promoted" and tags["gate.role"] == "challenger"
    assert float(tags["gate.challenger.balanced_accuracy"]) == pytest.approx(
        decision.challenger_metrics["balanced_accuracy"]
    )
    record = json.loads((cfg.path("outputs") / "registry" / "ptb.json").read_text())
    assert record["action"] == "promoted" and record["challenger"] == v1
    card = (cfg.path("outputs") / "model_cards" / "ptb.md").read_text()
    assert f"version {v1}" in card and "Not a medical device" in card and "125 Hz" in card
    assert "| beat | val |" in card and "| beat | test |" in card
    client = mlflow_client(cfg)
    assert "Model card" in client.get_model_version(decision.model, v1).description
    assert str(decision).startswith(f"{decision.model}: PROMOTED version {v1}")
    shown = promote(cfg, "ptb", dry_run=True)  # no challenger left: the champion is shown
    assert shown.action == "no_challenger" and f"champion is version {v1}" in shown.reason
    register_best(cfg, "ptb", train_data=ptb["train"])  # a rerun picks the champion's run again
    assert promote(cfg, "ptb", eval_data=ptb["test"]).action == "unchanged"
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(cfg, "ptb")


def test_worse_challenger_is_refused_and_champion_kept(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    v1 = challenge(cfg, ptb, fit_lr(ptb["train"]), 0.7, name="lr")
    assert promote(cfg, "ptb", eval_data=ptb["test"]).promoted
    # best on validation (steered), but no better than chance on the held-out data
    v2 = challenge(cfg, ptb, fit_prior(ptb["train"]), 0.99, name="prior")

    decision = promote(cfg, "ptb", eval_data=ptb["test"])

    assert not decision.promoted and decision.action == "refused"
    assert [c.name for c in decision.checks if not c.passed] == ["better"]
    assert "better" in decision.reason and decision.champion == v1
    assert aliases(cfg) == {CHALLENGER: v2, CHAMPION: v1, PREVIOUS_CHAMPION: None}
    for version, role in ((v1, "champion"), (v2, "challenger")):  # decision on both versions
        tags = version_tags(cfg, version)
        assert tags["gate.decision"] == "refused" and tags["gate.role"] == role
        assert tags["gate.challenger_version"] == v2 and tags["gate.champion_version"] == v1
        assert float(tags["gate.challenger.balanced_accuracy"]) == 0.5
        assert float(tags["gate.champion.balanced_accuracy"]) > 0.5
    assert "REFUSED" in str(decision)


def test_better_challenger_is_promoted_and_can_be_rolled_back(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    v1 = challenge(cfg, ptb, fit_prior(ptb["train"]), 0.6, name="prior")
    assert promote(cfg, "ptb", eval_data=ptb["test"]).promoted
    v2 = challenge(cfg, ptb, fit_lr(ptb["train"]), 0.9, name="lr")

    dry = promote(cfg, "ptb", dry_run=True, eval_data=ptb["test"])
    assert dry.action == "would_promote" and dry.accepted and not dry.promoted
    assert aliases(cfg)[CHAMPION] == v1 and "gate.decision" not in version_tags(cfg, v2)

    decision = promote(cfg, "ptb", eval_data=ptb["test"])
    assert decision.promoted
    b = decision.challenger_metrics["balanced_accuracy"]
    assert b > decision.champion_metrics["balanced_accuracy"] + cfg.registry.margin
    assert aliases(cfg) == {CHALLENGER: None, CHAMPION: v2, PREVIOUS_CHAMPION: v1}

    back = rollback(cfg, "ptb")
    assert back.action == "rolled_back" and back.champion == v1
    assert aliases(cfg) == {CHALLENGER: None, CHAMPION: v1, PREVIOUS_CHAMPION: None}
    client = mlflow_client(cfg)
    assert json.loads(client.get_registered_model(decision.model).tags[HISTORY_TAG]) == [v1]
    assert "gate.rolled_back_at" in version_tags(cfg, v2)
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(cfg, "ptb")
    assert aliases(cfg)[CHAMPION] == v1


def test_drifted_training_data_is_refused(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    v1 = challenge(cfg, ptb, fit_prior(ptb["train"]), 0.6, name="prior")
    assert promote(cfg, "ptb", eval_data=ptb["test"]).promoted
    gain_changed = ptb["train"].copy()
    signal = [c for c in gain_changed.columns if c.startswith("x")]
    gain_changed[signal] = gain_changed[signal] * 0.4
    challenge(cfg, ptb, fit_lr(ptb["train"]), 0.9, train=gain_changed, name="lr")

    decision = promote(cfg, "ptb", eval_data=ptb["test"])

    assert decision.action == "refused"
    assert [c.name for c in decision.checks if not c.passed] == ["drift"]  # better, but drifted
    assert "training data drifted" in decision.reason and "drift_threshold" in decision.reason
    assert aliases(cfg)[CHAMPION] == v1


def test_challenger_below_the_floor_never_becomes_first_champion(registry_cfg, ptb) -> None:
    cfg = registry_cfg(registry={"floors": {"ptb": {"balanced_accuracy": 0.6}}})
    challenge(cfg, ptb, fit_prior(ptb["train"]), 0.9)

    decision = promote(cfg, "ptb", eval_data=ptb["test"])

    assert decision.action == "refused"
    assert [c.name for c in decision.checks if not c.passed] == ["floors"]
    assert "balanced_accuracy 0.5000 < 0.6" in decision.reason
    assert aliases(cfg)[CHAMPION] is None


def test_size_and_latency_limits(registry_cfg, ptb) -> None:
    base = registry_cfg()
    challenge(base, ptb, fit_lr(ptb["train"]), 0.8)
    for limits, failed in (
        ({"max_model_mb": 0.001}, "size"),
        ({"max_latency_ms": 0.0001}, "latency"),
    ):
        cfg = registry_cfg(registry=limits)
        decision = promote(cfg, "ptb", dry_run=True, eval_data=ptb["test"])
        assert decision.action == "refused" and decision.dry_run
        assert [c.name for c in decision.checks if not c.passed] == [failed]
    assert aliases(base)[CHAMPION] is None  # dry runs change nothing


def test_model_for_another_task_fails_the_signature_check(registry_cfg, ptb, mitbih) -> None:
    cfg = registry_cfg()
    log_run(cfg, "ptb", fit_lr(mitbih["train"]), mitbih, model_task="mitbih", val_score=0.9)
    register_best(cfg, "ptb", train_data=ptb["train"])

    decision = promote(cfg, "ptb", eval_data=ptb["test"])

    assert decision.action == "refused"
    failed = {c.name: c.detail for c in decision.checks if not c.passed}
    assert "model is for task 'mitbih'" in failed["signature"] and "smoke" in failed
    assert aliases(cfg)[CHAMPION] is None


def gate_project(cfg) -> tuple[dict, object]:
    """The PTB fixture table as the project's beat table, split: (beat-scheme parts, gate)."""
    from fixtures_mlflow import beat_table

    from ecgops.data.splits import load_gate, load_split, make_splits
    from ecgops.paths import beat_table as table_path

    path = table_path(cfg, "ptb")
    path.parent.mkdir(parents=True, exist_ok=True)
    beat_table("ptb").to_parquet(path, index=False)
    make_splits(cfg, "ptb")
    return load_split(cfg, "ptb", "beat"), load_gate(cfg, "ptb")


def test_gate_data_default_is_the_sealed_gate_set(cfg_smoke) -> None:
    from ecgops.data.splits import load_split
    from ecgops.registry.promote import eval_data_for

    _, gate = gate_project(cfg_smoke)
    x, y, groups, described = eval_data_for(cfg_smoke, "ptb", None)
    assert len(x) == len(gate) and (y == gate["label"].to_numpy()).all()
    assert set(groups) == set(gate["patient"]) and len(set(groups)) > 1
    assert described.startswith("ptb sealed gate set")
    for scheme in ("beat", "patient"):  # in no part of either scheme
        for part in load_split(cfg_smoke, "ptb", scheme).values():
            assert not set(part["patient"]) & set(groups)


def test_challenger_better_on_test_but_not_on_the_gate_set_is_refused(registry_cfg) -> None:
    from sklearn.neighbors import RadiusNeighborsClassifier

    cfg = registry_cfg()
    parts, gate = gate_project(cfg)
    v1 = challenge(cfg, parts, fit_prior(parts["train"]), 0.6, name="prior")
    first = promote(cfg, "ptb")  # the default evaluation data: the sealed gate set
    assert first.promoted and first.eval_data.startswith("ptb sealed gate set"), str(first)
    # memorised the test part (exact beats -> their labels), the majority class elsewhere
    majority = int(parts["train"]["label"].mode()[0])
    memoriser = RadiusNeighborsClassifier(radius=1e-6, outlier_label=majority)
    memoriser.fit(*xy(parts["test"]))
    v2 = challenge(cfg, parts, memoriser, 0.99, name="memoriser")

    on_test = promote(cfg, "ptb", dry_run=True, eval_data=parts["test"])
    assert on_test.action == "would_promote", str(on_test)  # judged on test it would win
    assert on_test.challenger_metrics["balanced_accuracy"] == 1.0
    assert on_test.comparison["difference"]["low"] > cfg.registry.margin

    decision = promote(cfg, "ptb")

    assert decision.action == "refused" and not decision.promoted, str(decision)
    assert [c.name for c in decision.checks if not c.passed] == ["better"]
    diff = decision.comparison["difference"]
    assert diff["low"] <= cfg.registry.margin and diff["estimate"] == pytest.approx(0.0)
    assert decision.comparison["groups"] == gate["patient"].nunique()
    assert aliases(cfg) == {CHALLENGER: v2, CHAMPION: v1, PREVIOUS_CHAMPION: None}
    tags = version_tags(cfg, v2)
    assert float(tags["gate.difference.balanced_accuracy_low"]) == pytest.approx(diff["low"])
    for key in ("challenger", "champion"):
        low = float(tags[f"gate.{key}.balanced_accuracy_low"])
        high = float(tags[f"gate.{key}.balanced_accuracy_high"])
        assert low <= float(tags[f"gate.{key}.balanced_accuracy"]) <= high
    assert json.loads(tags["gate.bootstrap"])["resamples"] == cfg.registry.bootstrap.n
    shown = str(decision)
    assert "sealed gate set" in shown and "difference (challenger - champion)" in shown
    assert "lower bound" in shown and "[" in shown
