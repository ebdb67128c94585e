"""Registering the best run as the challenger: selection on validation among comparable runs,
idempotence, locking."""

from __future__ import annotations

import threading

import pytest
from fixtures_mlflow import beat_table, fit_lr, fit_prior, free_port, log_run, xy

from ecgops.errors import RegistryError, TrackingUnavailable
from ecgops.evaluation.records import RULE_TAG, rule_from_tag
from ecgops.registry import drift
from ecgops.registry.candidates import RunScope
from ecgops.registry.client import (
    CHALLENGER,
    mlflow_client,
    registered_model_name,
    registry_lock,
)
from ecgops.registry.register import register_best

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


def test_the_run_ranked_on_the_patient_scheme_is_the_one_registered(registry_cfg, ptb) -> None:
    cfg = registry_cfg(registry={"select_scheme": "patient"})
    memoriser = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="rf", val_score=0.95)
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="lr", val_score=0.80)
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="rf", scheme="patient", val_score=0.60)
    generaliser = log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="lr", scheme="patient",
                          val_score=0.75)  # fmt: skip

    mv = register_best(cfg, "ptb", train_data=ptb["train"], val_data=ptb["val"])

    # lr wins on new patients, and its patient-split run itself is registered: the model whose
    # validation figure ranked it, not a sibling trained on another split
    assert mv.run_id == generaliser != memoriser
    assert mv.tags["select_scheme"] == mv.tags["split_scheme"] == "patient"
    assert float(mv.tags["select_value"]) == pytest.approx(0.75)
    assert float(mv.tags["metric.val_balanced_accuracy"]) == pytest.approx(0.75)
    rule = rule_from_tag(mv.tags[RULE_TAG])  # learned on the validation records
    assert rule["kind"] in {"argmax", "threshold"} and rule["val_records"] >= 1
    assert rule["fitted_on"] == f"patient validation records, run {generaliser}"  # its own

    plain = registry_cfg(registry={"select_scheme": None})  # rank on splits.scheme (beat)
    assert register_best(plain, "ptb", train_data=ptb["train"]).run_id == memoriser


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


# ---- like with like: profile, data version and split version ---------------------------------


def _log_model_run(cfg, name: str, predictor, val_score: float) -> str:
    """A finished MIT-BIH beat-scheme run with a logged model and a given validation score."""
    import mlflow

    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.tracking import start_run

    with start_run(cfg, "mitbih", name, scheme="beat") as run:
        mlflow.log_metric("val_balanced_accuracy", val_score)
        x, _ = xy(beat_table("mitbih"))
        log_beat_model(predictor, "mitbih", cfg.class_names("mitbih"), x[:3])
        return run.info.run_id


def _write_tables(cfg, table) -> None:
    """The project's MIT-BIH beat table and its splits, as ``data build`` + ``split`` leave them."""
    from ecgops.data.splits import make_splits
    from ecgops.paths import beat_table as table_path

    path = table_path(cfg, "mitbih")
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    make_splits(cfg, "mitbih")


def test_only_runs_of_this_profile_data_and_split_compete(registry_cfg) -> None:
    """A smoke pipeline in a project that already holds better-scoring runs of another profile,
    an older beat table and another split: registration ranks only its own runs (issue 16) and
    succeeds with a model trained on 3 of the 5 classes (the smoke MIT-BIH training part)."""
    from sklearn.linear_model import LogisticRegression

    from ecgops.data.splits import load_split

    cfg = registry_cfg()
    table = beat_table("mitbih")
    _write_tables(cfg, table.iloc[:-20])  # an older beat table: another data version
    old_data = _log_model_run(cfg, "old-data", fit_lr(table), 0.99)
    resplit = registry_cfg(splits={"val_size": 0.3})
    _write_tables(resplit, table)  # the current table, another split
    other_split = _log_model_run(resplit, "other-split", fit_lr(table), 0.97)
    _write_tables(cfg, table)  # this pipeline's tables
    other_profile = _log_model_run(registry_cfg(profile="quick"), "quick", fit_lr(table), 0.98)
    train = load_split(cfg, "mitbih", "beat")["train"]
    seen = train[train["label"].isin([0, 2, 4])]
    three = LogisticRegression(max_iter=500).fit(*xy(seen))
    ours = _log_model_run(cfg, "three-classes", three, 0.40)
    scope = RunScope.current(cfg, "mitbih")
    tags = {
        r: mlflow_client(cfg).get_run(r).data.tags for r in (old_data, other_split, other_profile)
    }
    assert tags[old_data]["data_version"] != scope.data_version  # each differs in one way only
    assert tags[other_split]["data_version"] == scope.data_version != "missing"
    assert tags[other_split]["split_version"] != scope.split_version
    assert tags[other_profile]["profile"] == "quick" != scope.profile
    assert {k: tags[other_profile][k] for k in ("data_version", "split_version")} == {
        "data_version": scope.data_version,
        "split_version": scope.split_version,
    }

    mv = register_best(cfg, "mitbih")

    assert mv is not None and mv.run_id == ours not in {old_data, other_profile, other_split}
    assert {k: mv.tags[k] for k in ("profile", "data_version", "split_version")} == scope.tags()
    assert drift.from_tag(mv.tags[drift.STATS_TAG])["n"] == len(train)  # its own training part
    rule = rule_from_tag(mv.tags[RULE_TAG])  # fitted on its own validation records: 5 columns
    assert rule["val_records"] >= 1 and rule["fitted_on"] == f"beat validation records, run {ours}"
    foreign = RunScope(scope.profile, "0" * 32, scope.split_version)  # nothing of that data
    assert register_best(cfg, "mitbih", scope=foreign) is None
