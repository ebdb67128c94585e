"""Cache keys of calls with per-model params: a model's knob changes that model's keys only.

The keys hash the same payloads as the DVC stages' params files (``ecgops.param_files``), so
this is the Prefect half of ``tests/test_stages.py``'s both-runners check, on the key itself.
"""

from __future__ import annotations

from pathlib import Path

from ecgops.model_params import CLASSICAL_MODEL_PARAMS, NET_PARAMS
from ecgops.orchestration.caching import cache_key
from ecgops.param_files import call_params, write_sections

CLASSICAL = ("classical", "splits")


def _key(cfg, model: str, model_params=(CLASSICAL_MODEL_PARAMS,), sections=CLASSICAL) -> str:
    inputs = {"task": "ptb", "scheme": "beat", "model": model}
    return cache_key("train-classical", cfg, inputs, sections, (), (), model_params)


def test_a_models_knob_changes_only_that_models_keys(cfg_smoke_factory) -> None:
    before = cfg_smoke_factory()
    after = cfg_smoke_factory(classical={"lgbm": {"n_estimators": 21}})
    assert _key(before, "lgbm") != _key(after, "lgbm")
    assert _key(before, "rf") == _key(after, "rf") and _key(before, "lr") == _key(after, "lr")
    shared = cfg_smoke_factory(classical={"imbalance": "none"})  # the common part: every model
    assert all(_key(before, m) != _key(shared, m) for m in ("lr", "rf", "lgbm"))


def test_a_stage_without_the_split_never_sees_the_subsection(cfg_smoke_factory) -> None:
    before = cfg_smoke_factory()
    after = cfg_smoke_factory(deep={"archs": {"rescnn": {"blocks": 3}}})
    plain = [_key(cfg, "rescnn", (), ("deep",)) for cfg in (before, after)]
    split = [_key(cfg, "rescnn", (NET_PARAMS,), ("deep",)) for cfg in (before, after)]
    assert plain[0] == plain[1]  # transfer stages: the deep knobs, not deep.archs
    assert split[0] != split[1]


def test_the_key_hashes_the_params_files_content(cfg_smoke, tmp_path: Path) -> None:
    written = {
        p.relative_to(tmp_path).with_suffix("").as_posix()
        for p in write_sections(cfg_smoke, tmp_path)
    }
    params = call_params(cfg_smoke, CLASSICAL, (CLASSICAL_MODEL_PARAMS,), {"model": "lgbm"})
    assert set(params) == {"classical", "splits", "classical/lgbm"} and set(params) <= written
    context = call_params(cfg_smoke, ("deep",), (NET_PARAMS,), {"model": "cnn+rr"})
    assert context["deep/archs/cnn+rr"]["deep.archs.cnn"] == cfg_smoke.deep.archs["cnn"]
    every = call_params(cfg_smoke, ("deep",), (NET_PARAMS,), {})  # no model: every net's file
    assert {"deep/archs/transformer", "deep/archs/rescnn+rr"} <= set(every)
