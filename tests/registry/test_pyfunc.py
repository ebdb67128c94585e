"""The self-contained pyfunc model: input validation and every accepted input layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_mlflow import fit_lr, log_run, parts, xy
from mlflow.exceptions import MlflowException

from ecgops.registry.pyfunc import (
    INPUT_TOLERANCE,
    BeatClassifier,
    InputError,
    coerce_beats,
    output_columns,
    prediction_frame,
)
from ecgops.schema import SIGNAL_COLUMNS


@pytest.fixture(scope="module")
def beats() -> tuple[np.ndarray, np.ndarray]:
    x, y = xy(parts("ptb")["test"])
    return x[:6].astype(np.float64), y[:6]


# ---- coerce_beats (no MLflow needed) ----------------------------------------------------------


def test_every_kaggle_layout_gives_the_same_beats(beats) -> None:
    x, y = beats
    layouts = [
        pd.DataFrame(x, columns=SIGNAL_COLUMNS),
        pd.DataFrame(x, columns=SIGNAL_COLUMNS).assign(label=y),
        pd.DataFrame(np.c_[y, x], columns=["label", *SIGNAL_COLUMNS]),  # named: order is free
        pd.DataFrame(x),
        pd.DataFrame(np.c_[x, y]),  # unnamed 188: the last column is the label
        x,
        x.astype(np.float32),
        x.tolist(),
    ]
    for layout in layouts:
        got = coerce_beats(layout, INPUT_TOLERANCE)
        assert got.dtype == np.float32 and got.shape == x.shape
        np.testing.assert_allclose(got, x, rtol=1e-6)
    assert coerce_beats(x[0], INPUT_TOLERANCE).shape == (1, 187)  # one beat as a flat row


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x: x[:, :100], "expected 187 values per row (or 188 with a label), got 100"),
        (lambda x: np.c_[x, x[:, :13]], "got 200"),
        (lambda x: x[:0], "no rows"),
        (lambda x: x[None], "expected a 2-D table"),
        (lambda x: np.where(np.arange(187) == 5, np.nan, x), "NaN or infinite value in row 0"),
        (lambda x: np.where(np.arange(187) == 5, np.inf, x), "NaN or infinite value"),
        (lambda x: x * 9.0, "outside [0, 1]"),
        (lambda x: x - 0.5, "outside [0, 1]"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(beats, make, message) -> None:
    x, _ = beats
    with pytest.raises(InputError, match=re_escape(message)):
        coerce_beats(make(x), INPUT_TOLERANCE)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_non_numeric_cell_is_located(beats) -> None:
    x, _ = beats
    frame = pd.DataFrame(x).astype(object)
    frame.iat[2, 7] = "abc"
    with pytest.raises(InputError, match=r"non-numeric value 'abc' in row 2, column 7"):
        coerce_beats(frame, INPUT_TOLERANCE)


def test_values_just_outside_the_range_are_tolerated(beats) -> None:
    x, _ = beats
    coerce_beats(np.clip(x + INPUT_TOLERANCE / 2, None, 1 + INPUT_TOLERANCE / 2), INPUT_TOLERANCE)


def test_input_error_is_an_mlflow_bad_request_and_a_value_error() -> None:
    err = InputError("bad rows")
    assert isinstance(err, MlflowException) and isinstance(err, ValueError)
    assert err.error_code == "INVALID_PARAMETER_VALUE" and err.get_http_status_code() == 400


def test_prediction_frame_columns_and_names() -> None:
    frame = prediction_frame(np.array([[0.2, 0.8], [0.9, 0.1]]), ["healthy", "MI"])
    assert list(frame.columns) == output_columns(2) == ["pred", "pred_name", "p_0", "p_1"]
    assert frame["pred"].tolist() == [1, 0] and frame["pred_name"].tolist() == ["MI", "healthy"]


# ---- every class of the task, whatever classes the model saw ---------------------------------

SEEN = [0, 2, 4]
"""The MIT-BIH classes the models below are trained on (N, V, Q: no S, no F)."""


def _three_of_five(cfg_smoke, kind: str):
    """A real model trained on the MIT-BIH fixture beats of classes 0, 2 and 4 only."""
    from fixtures_mlflow import beat_table
    from sklearn.linear_model import LogisticRegression

    from ecgops.models.classical import build_pipeline

    table = beat_table("mitbih")
    x, y = xy(table[table["label"].isin(SEEN)])
    if kind == "lr":
        return LogisticRegression(max_iter=500).fit(x, y)
    pipeline = build_pipeline(cfg_smoke, kind, "raw", len(cfg_smoke.class_names("mitbih")), "none")
    return pipeline.fit(x, y)


@pytest.mark.parametrize("kind", ["lr", "rf", "lgbm"])
def test_a_model_that_saw_three_of_five_classes_answers_for_all_five(cfg_smoke, kind) -> None:
    from fixtures_mlflow import beat_table

    names = cfg_smoke.class_names("mitbih")
    predictor = _three_of_five(cfg_smoke, kind)
    x, _ = xy(beat_table("mitbih"))

    out = BeatClassifier(predictor, "mitbih", names).predict(None, x)

    assert list(out.columns) == output_columns(5)
    p = out[[f"p_{j}" for j in range(5)]].to_numpy()
    assert (p[:, [1, 3]] == 0).all()  # S and F: never seen, probability 0 in their own column
    np.testing.assert_allclose(p[:, SEEN], predictor.predict_proba(x), rtol=1e-6)  # by label
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert set(out["pred"]) <= set(SEEN)
    assert out["pred_name"].tolist() == [names[i] for i in out["pred"]]


def test_classes_outside_the_task_are_refused(cfg_smoke) -> None:
    from fixtures_mlflow import beat_table
    from sklearn.linear_model import LogisticRegression

    table = beat_table("mitbih")
    x, y = xy(table)
    wrong = LogisticRegression(max_iter=200).fit(x, y + 3)  # labels 3..7 for a 5-class task
    with pytest.raises(RuntimeError, match="not labels 0..4"):
        BeatClassifier(wrong, "mitbih", cfg_smoke.class_names("mitbih")).predict(None, x[:4])


# ---- the logged model, loaded back from the registry server ----------------------------------


@pytest.fixture(scope="module")
def logged_model(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory):
    """A model logged by ``log_beat_model`` on the test server, loaded back as pyfunc."""
    import mlflow.pyfunc
    from fixtures_mlflow import server_config

    data = parts("ptb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        cfg = server_config(mlflow_server, tmp_path_factory.mktemp("pyfunc"), "pyfunc")
        predictor = fit_lr(data["train"])
        run_id = log_run(cfg, "ptb", predictor, data, name="lr")
        model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    return model, predictor


@pytest.mark.integration
def test_loaded_model_accepts_unnamed_and_named_rows(logged_model, beats) -> None:
    model, predictor = logged_model
    x, y = beats
    expected = predictor.predict_proba(x.astype(np.float32))
    for layout in (
        pd.DataFrame(x),
        pd.DataFrame(np.c_[x, y]),
        pd.DataFrame(x, columns=SIGNAL_COLUMNS),
        x,
        x.tolist(),
    ):
        out = model.predict(layout)
        assert list(out.columns) == ["pred", "pred_name", "p_0", "p_1"]
        np.testing.assert_allclose(out[["p_0", "p_1"]].to_numpy(), expected, rtol=1e-5)
        assert out["pred_name"].tolist() == [["healthy", "MI"][i] for i in out["pred"]]


@pytest.mark.integration
def test_loaded_model_validates_its_input(logged_model, beats) -> None:
    model, _ = logged_model
    x, _ = beats
    with pytest.raises(InputError, match="got 100"):
        model.predict(pd.DataFrame(x[:, :100]))
    with pytest.raises(InputError, match="NaN"):
        model.predict(np.where(np.arange(187) == 0, np.nan, x))
    with pytest.raises(InputError, match="outside"):
        model.predict(x * 3)


@pytest.mark.integration
def test_logged_model_declares_its_contract(logged_model) -> None:
    model, _ = logged_model
    meta = model.metadata
    assert meta.signature.inputs is None  # the model validates its input itself
    assert [c["name"] for c in meta.signature.outputs.to_dict()] == output_columns(2)
    assert meta.metadata["ecgops"]["task"] == "ptb"
    assert meta.metadata["ecgops"]["class_names"] == ["healthy", "MI"]
