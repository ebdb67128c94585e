"""Serving a registered model over HTTP with MLflow's scoring server, on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_mlflow import beat_table, free_port, xy

from ecgops import serve as serving
from ecgops.errors import RegistryError
from ecgops.schema import SIGNAL_COLUMNS


def test_default_command_binds_loopback_and_uses_this_environment(cfg_smoke) -> None:
    cmd = serving.serve_command("models:/ecgops-ptb@champion", cfg_smoke.serving.host, 5001)
    assert cfg_smoke.serving.host == "127.0.0.1"
    assert cmd[cmd.index("-h") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--env-manager") + 1] == "local"
    assert serving.serve_env(cfg_smoke)["MLFLOW_TRACKING_URI"] == cfg_smoke.tracking_uri
    assert (
        serving.is_loopback("127.0.0.1")
        and serving.is_loopback("localhost")
        and serving.is_loopback("::1")
    )
    assert not serving.is_loopback("0.0.0.0")


@pytest.mark.integration
def test_serving_a_task_without_champion_is_refused(registry_cfg) -> None:
    with pytest.raises(RegistryError, match="no version with the alias 'champion'"):
        serving.start(registry_cfg(), task="mitbih", port=free_port())


@pytest.fixture(scope="module")
def beats() -> tuple[np.ndarray, np.ndarray]:
    x, y = xy(beat_table("ptb"))
    return x[:5].astype(np.float64), y[:5]


@pytest.mark.integration
@pytest.mark.slow
def test_served_champion_answers_valid_and_invalid_requests(ptb_champion, beats, tmp_path) -> None:
    import mlflow.pyfunc

    cfg, uri = ptb_champion
    x, y = beats
    port = free_port()
    proc = serving.start(cfg, task="ptb", port=port, log_file=tmp_path / "serve.log")
    try:
        serving.wait_ready("127.0.0.1", port, cfg.serving.startup_timeout_s, proc)
        expected = mlflow.pyfunc.load_model(uri).predict(x)
        valid = [
            {"inputs": x.tolist()},
            {"dataframe_split": {"data": np.c_[x, y].tolist()}},  # unnamed, with the label
            {"dataframe_split": {"columns": SIGNAL_COLUMNS, "data": x.tolist()}},
            {"dataframe_records": [dict(zip(SIGNAL_COLUMNS, r, strict=True)) for r in x.tolist()]},
        ]
        for payload in valid:
            status, body = serving.invoke("127.0.0.1", port, payload)
            assert status == 200, body
            got = body["predictions"]
            assert [r["pred"] for r in got] == expected["pred"].tolist()
            assert [r["pred_name"] for r in got] == expected["pred_name"].tolist()
            np.testing.assert_allclose([r["p_1"] for r in got], expected["p_1"], rtol=1e-5)
        invalid = [
            ({"inputs": x[:, :100].tolist()}, "expected 187 values per row"),
            ({"dataframe_split": {"data": [[None, *x[0, 1:].tolist()]]}}, "NaN"),
            ({"inputs": (x * 5).tolist()}, "outside [0, 1]"),
            ({"dataframe_split": {"data": [["a", *x[0, 1:].tolist()]]}}, "non-numeric"),
        ]
        for payload, message in invalid:
            status, body = serving.invoke("127.0.0.1", port, payload)
            assert status == 400 and message in body["message"], body
    finally:
        serving.stop(proc)
    assert proc.poll() is not None
