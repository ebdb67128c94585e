"""The multi-lead PTB model kind: registered, gated and used by ``predict --record``.

Fixtures: the smoke profile's three leads (I, II, V1) of the PTB-XL and PTB Diagnostic cuts;
the MIT-BIH cut (MLII, V1) has no lead I or II: its record falls back on the single-lead model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from ecgops.config import Config

pytestmark = pytest.mark.slow  # trains, registers and gates two models

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"
PTBXL = RAW / "ptbxl" / "records500" / "00000" / "00001_hr"
PTBDB = RAW / "ptbdb-sample" / "patient205" / "s0426_re"
MITDB = RAW / "mitdb" / "208"  # MLII and V1: no lead I or II by those names


@pytest.fixture(scope="module")
def champions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """ptb and ptb12 built and split; a single-lead and a multi-lead champion registered."""
    from conftest import ENV_OVERRIDES, RAW_FIXTURES, smoke_config

    from ecgops.data.build import collect, save_table
    from ecgops.data.multilead import build_multilead
    from ecgops.data.multilead_splits import make_multilead_splits
    from ecgops.data.splits import make_splits
    from ecgops.registry.promote import promote
    from ecgops.registry.register import register_best
    from ecgops.training.deep import train_deep
    from ecgops.training.multilead import train_multilead

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_OVERRIDES:
            mp.delenv(name, raising=False)
        cfg = smoke_config(
            tmp_path_factory.mktemp("ml-registry"),
            paths={"raw": str(RAW_FIXTURES)},
            deep={"num_threads": 1, "epochs": 2, "per_task": {"ptb": {"epochs": 2}}},
        )
        save_table(cfg, "ptb", *collect(cfg, "ptb"))
        make_splits(cfg, "ptb")
        build_multilead(cfg)
        make_multilead_splits(cfg)
        train_deep(cfg, "ptb", "beat", "cnn")
        train_multilead(cfg, "beat", "cnn", "all")
        for kind in ("morphology", "multilead"):
            assert register_best(cfg, "ptb", scheme="beat", kind=kind) is not None
            decision = promote(cfg, "ptb", kind=kind)
            assert decision.promoted, decision.reason
        yield cfg
    torch.set_num_threads(threads)


def test_ptb_has_a_multilead_kind_with_its_own_name(cfg_smoke: Config) -> None:
    from ecgops.registry.client import kind_task, model_kinds, registered_model_name

    assert model_kinds("ptb") == ["morphology", "multilead"]
    assert "multilead" not in model_kinds("mitbih")
    assert registered_model_name(cfg_smoke, "ptb", "multilead") == "ecgops-ptb-multilead"
    assert kind_task("ptb", "multilead") == "ptb12" and kind_task("ptb", "morphology") == "ptb"


def test_the_multilead_champion_passed_the_gate_on_the_ptb12_gate_rows(champions) -> None:
    from ecgops.io import read_json

    decision = read_json(champions.path("outputs") / "registry" / "ptb-multilead.json")
    assert decision["action"] == "promoted"
    assert "ptb12 sealed gate set" in decision["eval_data"]
    checks = {c["name"]: c["passed"] for c in decision["checks"]}
    assert checks["signature"] and checks["smoke"] and checks["latency"]


def test_records_use_the_multilead_champion_when_they_have_its_leads(champions, tmp_path):
    from ecgops.predict import predict_records

    out = tmp_path / "records.csv"
    summary = predict_records(champions, "ptb", [PTBXL, PTBDB, MITDB], out)
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["record", "n_beats", "pred", "pred_name", "p_0", "p_1"]
    used = summary["record_models"]
    assert used[str(PTBXL)] == used[str(PTBDB)] == "models:/ecgops-ptb-multilead@champion"
    assert used[str(MITDB)] == "models:/ecgops-ptb@champion"  # no lead I / II: single lead (MLII)
    assert (rows["n_beats"] > 0).all()


def test_an_explicit_multilead_model_names_the_record_and_its_missing_leads(
    champions, tmp_path
) -> None:
    from ecgops.data.multilead import MissingLeadsError
    from ecgops.predict import predict_records

    uri = "models:/ecgops-ptb-multilead@champion"
    with pytest.raises(MissingLeadsError, match=r"208.*lacks lead\(s\) I, II"):
        predict_records(champions, "ptb", [PTBXL, MITDB], tmp_path / "x.csv", model_uri=uri)
    assert not (tmp_path / "x.csv").exists()
