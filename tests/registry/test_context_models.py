"""Two MIT-BIH champions: morphology-only (``ecgops-mitbih``) and with RR context
(``ecgops-mitbih-context``), each registered from its own runs and through the same gate.

Real tiny models trained by the real trainers on the MIT-BIH table built from the fixture
records (every beat with its RR context), on a real MLflow server.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config
from ecgops.evaluation.records import RULE_TAG
from ecgops.schema import CONTEXT_COLUMNS, SIGNAL_COLUMNS


@pytest.fixture
def trained(registry_cfg) -> tuple[Config, dict[str, str]]:
    """A mitbih table with context and two runs: ``lgbm-raw`` and ``lgbm-raw+rr``."""
    from ecgops.data.build import collect, save_table
    from ecgops.data.raw import import_raw
    from ecgops.data.splits import make_splits
    from ecgops.training.classical import train_classical

    cfg = registry_cfg()
    import_raw(cfg)
    save_table(cfg, "mitbih", *collect(cfg, "mitbih"))
    make_splits(cfg, "mitbih")
    runs = {
        kind: train_classical(cfg, "mitbih", "patient", "lgbm", name)["mlflow_run_id"]
        for kind, name in (("morphology", "raw"), ("context", "raw+rr"))
    }
    return cfg, runs


def test_each_kind_registers_its_own_runs_and_passes_the_same_gate(trained) -> None:
    import mlflow

    from ecgops.data.splits import load_split
    from ecgops.prediction.annotate import default_model_uri
    from ecgops.registry.candidates import find_candidates
    from ecgops.registry.client import mlflow_client, registered_model_name
    from ecgops.registry.promote import promote
    from ecgops.registry.pyfunc import InputError
    from ecgops.registry.register import register_best

    cfg, runs = trained
    client = mlflow_client(cfg)
    for kind, run_id in runs.items():
        found = find_candidates(client, cfg, "mitbih", "patient", kind=kind)
        assert [c.run.info.run_id for c in found] == [run_id]
    assert default_model_uri(cfg, "mitbih") is None  # no context champion yet: morphology's

    test = load_split(cfg, "mitbih", "patient")["test"]
    names = {}
    for kind, run_id in runs.items():
        version = register_best(cfg, "mitbih", "patient", kind=kind)
        assert version is not None and version.run_id == run_id
        rule = json.loads(version.tags[RULE_TAG])  # fitted on its own input (+ RR context)
        assert rule["kind"] == "argmax" and rule["val_records"] > 0  # 5 classes: argmax
        names[kind] = version.name
        decision = promote(cfg, "mitbih", eval_data=test, kind=kind)
        assert decision.promoted, decision
        assert {c.name for c in decision.checks} >= {"signature", "smoke", "latency"}
        assert (cfg.path("outputs") / "registry").glob("mitbih*.json")
    assert names == {
        "morphology": registered_model_name(cfg, "mitbih"),
        "context": registered_model_name(cfg, "mitbih") + "-context",
    }
    assert (cfg.path("outputs") / "registry" / "mitbih-context.json").is_file()
    assert default_model_uri(cfg, "mitbih") == f"models:/{names['context']}@champion"

    mlflow.set_tracking_uri(cfg.tracking_uri)
    beats = test.head(5)
    kaggle = pd.DataFrame(np.c_[beats[SIGNAL_COLUMNS].to_numpy(), beats["label"]])
    context_model = mlflow.pyfunc.load_model(f"models:/{names['context']}@champion")
    with pytest.raises(InputError) as refused:
        context_model.predict(kaggle)
    assert all(c in str(refused.value) for c in CONTEXT_COLUMNS)
    morphology = mlflow.pyfunc.load_model(f"models:/{names['morphology']}@champion")
    assert morphology.predict(kaggle).equals(morphology.predict(beats))  # context ignored


def test_a_context_model_is_not_for_ptb(registry_cfg) -> None:
    from ecgops.errors import RegistryError
    from ecgops.registry.client import model_kinds, registered_model_name

    assert "context" not in model_kinds("ptb")  # PTB beats carry no RR context
    assert model_kinds("mitbih") == ["morphology", "context"]
    with pytest.raises(RegistryError, match="no 'context' model for ptb"):
        registered_model_name(registry_cfg(), "ptb", "context")
