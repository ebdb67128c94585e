"""Registering the best run as the challenger: selection on validation, idempotence, locking."""

from __future__ import annotations

import threading

import pytest
from fixtures_mlflow import fit_lr, fit_prior, free_port, log_run

from ecgops.errors import RegistryError, TrackingUnavailable
from ecgops.evaluation.records import RULE_TAG, rule_from_tag
from ecgops.registry import drift
from ecgops.registry.register import (
    CHALLENGER,
    mlflow_client,
    register_best,
    registered_model_name,
    registry_lock,
)

pytestmark = pytest.mark.integration


def versions(cfg, task="ptb"):
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, task)
    return client.search_model_versions(f"name = '{name}'")


def test_best_validation_run_becomes_challenger_once(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    good_on_test = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="a", val_score=0.70)
    best_on_val = log_run(cfg, "ptb", fit_prior(ptb["train"]), ptb, name="b", val_score=0.80)
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="no-model", val_score=0.99,
            log_model=False)  # fmt: skip

    mv = register_best(cfg, "ptb", train_data=ptb["train"])

    assert mv is not None and mv.run_id == best_on_val != good_on_test  # never chosen on test
    assert mv.name == registered_model_name(cfg, "ptb") == f"{cfg.tracking.experiment_prefix}-ptb"
    assert CHALLENGER in mv.aliases
    tags = mv.tags
    assert tags["run_id"] == best_on_val and tags["split_scheme"] == "beat"
    assert tags["select_metric"] == "val_balanced_accuracy"
    assert float(tags["metric.val_balanced_accuracy"]) == pytest.approx(0.80)
    assert {"data_version", "git_commit", "metric.test_balanced_accuracy"} <= set(tags)
    stats = drift.from_tag(tags[drift.STATS_TAG])
    assert stats["n"] == len(ptb["train"])

    again = register_best(cfg, "ptb", train_data=ptb["train"])  # a rerun registers nothing new
    assert again.version == mv.version
    assert len(versions(cfg)) == 1


def test_configurations_are_ranked_on_the_patient_scheme(registry_cfg, ptb) -> None:
    cfg = registry_cfg(registry={"select_scheme": "patient"})
    memoriser = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="rf", val_score=0.95)
    generaliser = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="lr", val_score=0.80)
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="rf", scheme="patient", val_score=0.60)
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="lr", scheme="patient", val_score=0.75)

    mv = register_best(cfg, "ptb", "beat", train_data=ptb["train"], val_data=ptb["val"])

    assert mv.run_id == generaliser != memoriser  # lr wins on new patients; its beat run is kept
    assert mv.tags["select_scheme"] == "patient" and mv.tags["split_scheme"] == "beat"
    assert float(mv.tags["select_value"]) == pytest.approx(0.75)
    rule = rule_from_tag(mv.tags[RULE_TAG])  # learned on the validation records
    assert rule["kind"] in {"argmax", "threshold"} and rule["val_records"] >= 1
    assert rule["fitted_on"].startswith("patient validation records")  # new patients only

    plain = registry_cfg(registry={"select_scheme": None})
    assert register_best(plain, "ptb", "beat", train_data=ptb["train"]).run_id == memoriser


def test_scheme_selects_among_that_schemes_runs(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    beat_run = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="beat", val_score=0.6)
    patient_run = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="patient",
                          scheme="patient", val_score=0.9)  # fmt: skip
    assert register_best(cfg, "ptb", train_data=ptb["train"]).run_id == beat_run
    assert register_best(cfg, "ptb", "patient", train_data=ptb["train"]).run_id == patient_run
    client = mlflow_client(cfg)  # search results carry no aliases: ask for the alias
    assert (
        client.get_model_version_by_alias(registered_model_name(cfg, "ptb"), CHALLENGER).version
        == "2"
    )


def test_nothing_to_register_returns_none(registry_cfg) -> None:
    assert register_best(registry_cfg(), "mitbih") is None


def test_without_training_data_the_version_says_why(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb)
    mv = register_best(cfg, "ptb")  # no beat table in this project: no statistics
    assert drift.STATS_TAG not in mv.tags
    assert "unavailable" in mv.tags["ecgops.train_stats_status"]


def test_concurrent_registrations_make_one_version(registry_cfg, ptb) -> None:
    cfg = registry_cfg()
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb)
    results, errors = [], []

    def work() -> None:
        try:
            results.append(register_best(cfg, "ptb", train_data=ptb["train"]).version)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == ["1", "1", "1"]
    assert len(versions(cfg)) == 1


def test_registry_lock_excludes_a_second_writer(registry_cfg) -> None:
    cfg = registry_cfg()
    busy = pytest.raises(RegistryError, match="holds the registry lock")
    with registry_lock(cfg), busy, registry_lock(cfg, timeout_s=0.3):
        pass
    with registry_lock(cfg, timeout_s=0.3):  # released: free again
        pass


def test_unreachable_tracking_server_fails_fast(registry_cfg, monkeypatch) -> None:
    cfg = registry_cfg(tracking={"uri": f"http://127.0.0.1:{free_port()}"})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking.uri)
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        register_best(cfg, "ptb")
