"""Config loading: model names checked against the registries once, dead keys gone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ecgops.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_project_params_load_with_their_names():
    cfg = load_config(ROOT, profile="smoke")
    assert set(cfg.pipeline.classical) <= {"ptb", "mitbih"}
    assert not hasattr(cfg.classical, "models") and not hasattr(cfg.deep, "models")


@pytest.mark.parametrize(
    ("overrides", "where", "bad"),
    [
        (
            {"pipeline": {"classical": {"ptb": ["lr", "xgboost"]}}},
            "pipeline.classical.ptb",
            "xgboost",
        ),
        ({"pipeline": {"deep": {"mitbih": ["cnn", "gru"]}}}, "pipeline.deep.mitbih", "gru"),
        ({"deep": {"archs": {"gru": {"hidden": 8}}}}, "deep.archs", "gru"),
    ],
)
def test_an_unknown_model_name_fails_at_load_naming_it_and_the_allowed(overrides, where, bad):
    with pytest.raises(ValidationError) as info:
        load_config(ROOT, profile="smoke", overrides=overrides)
    message = str(info.value)
    assert where in message and repr(bad) in message
    assert "expected one of" in message


def test_a_pipeline_net_without_an_arch_fails_at_load():
    cfg = load_config(ROOT, profile="smoke")
    archs = {k: v for k, v in cfg.deep.archs.items() if k != "lstm"}
    params = cfg.model_dump(mode="json")
    params["deep"]["archs"] = archs
    params["pipeline"]["deep"] = {"ptb": ["lstm"]}
    with pytest.raises(ValidationError, match="no deep.archs entry"):
        type(cfg)(**params, root=cfg.root)


def test_an_unknown_task_in_the_pipeline_fails_at_load():
    with pytest.raises(ValidationError, match="unknown task 'ecg5000'"):
        load_config(ROOT, profile="smoke", overrides={"pipeline": {"deep": {"ecg5000": ["cnn"]}}})


def test_the_beat_length_is_not_configurable():
    with pytest.raises(ValidationError, match="beat_len"):
        load_config(ROOT, profile="smoke", overrides={"data": {"beat_len": 200}})


def test_loading_the_config_imports_no_torch_nor_sklearn():
    code = (
        "import sys; from ecgops.config import load_config; load_config(); "
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
