"""Batch prediction on Kaggle-layout CSVs and record-level diagnosis of WFDB records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_mlflow import beat_table, xy

from ecgops import predict as prediction
from ecgops.data.records import record_beats
from ecgops.errors import DataError, RegistryError
from ecgops.evaluation.records import RULE_TAG, rule_from_tag
from ecgops.registry.client import mlflow_client
from ecgops.registry.model import load_model, resolve_model_uri

RAW = Path(__file__).resolve().parent / "fixtures" / "raw"
PTBXL = RAW / "ptbxl" / "records500" / "00000" / "00001_hr"
PTBDB = RAW / "ptbdb-sample" / "patient205" / "s0426_re"
MITDB = RAW / "mitdb" / "208"


def write_csv(path: Path, rows: np.ndarray) -> Path:
    np.savetxt(path, rows, delimiter=",", fmt="%.8g")
    return path


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return beat_table("ptb")


# ---- model URIs (no server) -------------------------------------------------------------------


def test_task_resolves_to_its_champion_and_untrusted_models_are_refused(cfg_smoke) -> None:
    cfg = cfg_smoke
    assert resolve_model_uri(cfg, task="ptb") == "models:/ecgops-ptb@champion"
    for ok in ("models:/ecgops-ptb/3", "runs:/abc/model", str(cfg.root / "models" / "m")):
        assert resolve_model_uri(cfg, model=ok) == ok
    for bad in ("http://example.org/model", "s3://bucket/model", "/tmp/elsewhere/model"):
        with pytest.raises(RegistryError, match="refusing to load"):
            resolve_model_uri(cfg, task="ptb", model=bad)
    with pytest.raises(RegistryError, match="give a task"):
        resolve_model_uri(cfg)


# ---- CSV prediction ---------------------------------------------------------------------------


@pytest.mark.integration
def test_csv_without_labels_one_row_per_beat_in_order(ptb_champion, table, tmp_path) -> None:
    import mlflow.pyfunc

    cfg, uri = ptb_champion
    x, _ = xy(table)
    src = write_csv(tmp_path / "beats.csv", x)
    out = tmp_path / "predictions.csv"

    summary = prediction.predict_csv(uri, src, out, chunk_size=16, cfg=cfg)  # 7 chunks

    pred = pd.read_csv(out)
    assert list(pred.columns) == ["pred", "pred_name", "p_0", "p_1"]
    assert len(pred) == len(x) == summary["rows"]
    direct = mlflow.pyfunc.load_model(uri).predict(x.astype(np.float64))
    assert pred["pred"].tolist() == direct["pred"].tolist()  # same order as the input
    np.testing.assert_allclose(pred["p_1"], direct["p_1"], rtol=1e-5, atol=1e-6)
    assert pred["pred_name"].tolist() == [["healthy", "MI"][i] for i in pred["pred"]]
    assert (
        summary["counts"]
        == pred["pred_name"].value_counts().reindex(["healthy", "MI"], fill_value=0).to_dict()
    )
    assert not summary["labelled"] and "metrics" not in summary


@pytest.mark.integration
def test_csv_with_labels_reports_metrics(ptb_champion, table, tmp_path) -> None:
    from ecgops.evaluation.metrics import classification_metrics

    cfg, uri = ptb_champion
    x, y = xy(table)
    src = write_csv(tmp_path / "labelled.csv", np.c_[x, y])

    summary = prediction.predict_csv(uri, src, tmp_path / "out.csv", cfg=cfg)

    pred = pd.read_csv(tmp_path / "out.csv")
    expected = classification_metrics(y, pred[["p_0", "p_1"]].to_numpy())
    assert summary["labelled"] and summary["true_counts"] == {"healthy": 55, "MI": 55}
    assert summary["metrics"]["balanced_accuracy"] == pytest.approx(
        expected["balanced_accuracy"], abs=1e-4
    )


def _bad_rows(x: np.ndarray, y: np.ndarray):
    """(name, file content, expected message) of bad CSVs."""
    good = [",".join(f"{v:.6g}" for v in row) for row in x[:6]]
    labelled = [f"{r},{int(lab)}" for r, lab in zip(good, y[:6], strict=True)]

    def with_line(i: int, line: str, rows=good) -> str:
        rows = list(rows)
        rows[i] = line
        return "\n".join(rows) + "\n"

    cells = good[2].split(",")
    return [
        ("empty", "", "empty file"),
        ("header", ",".join(f"x{i}" for i in range(187)) + "\n" + "\n".join(good), "header"),
        ("narrow", "\n".join(",".join(r.split(",")[:100]) for r in good), "100 values per line"),
        ("wider later", with_line(3, good[3] + ",0.5,0.5,0.5"), "line 4: 190 values"),
        ("shorter later", with_line(3, ",".join(good[3].split(",")[:150])), "line 4: only 150"),
        ("non-numeric", with_line(2, ",".join([*cells[:5], "abc", *cells[6:]])),
         "line 3, column 6: non-numeric value 'abc'"),
        ("nan", with_line(4, ",".join([*cells[:9], "nan", *cells[10:]])), "line 5, column 10"),
        ("inf", with_line(1, ",".join(["inf", *cells[1:]])), "line 2, column 1"),
        ("out of range", with_line(5, ",".join(["3.5", *cells[1:]])), "outside [0, 1]"),
        ("blank line", with_line(2, ""), "line 3: empty line"),
        ("bad label", with_line(1, good[1] + ",7", labelled), "label 7 is not a class index"),
        ("fractional label", with_line(1, good[1] + ",0.5", labelled), "label 0.5"),
    ]  # fmt: skip


@pytest.mark.integration
def test_bad_csv_is_refused_with_file_and_line_and_keeps_the_old_output(
    ptb_champion, table, tmp_path
) -> None:
    cfg, uri = ptb_champion
    model = load_model(uri, cfg)  # loaded once for the dozen files
    x, y = xy(table)
    out = tmp_path / "predictions.csv"
    out.write_text("an earlier good output\n")
    for name, content, message in _bad_rows(x, y):
        src = tmp_path / f"{name.replace(' ', '_')}.csv"
        src.write_text(content)
        with pytest.raises(DataError) as err:
            prediction.predict_csv(model, src, out, chunk_size=2)
        assert str(src) in str(err.value) and message in str(err.value), (name, str(err.value))
        assert out.read_text() == "an earlier good output\n", name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_missing_input_file(cfg_smoke, tmp_path) -> None:
    with pytest.raises(DataError, match="input CSV not found"):  # before contacting a registry
        prediction.predict_csv(
            "models:/any@champion", tmp_path / "nope.csv", tmp_path / "out.csv", cfg=cfg_smoke
        )
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.integration
def test_one_chunked_prediction_sized_by_config(ptb_champion, table) -> None:
    cfg, uri = ptb_champion
    x, _ = xy(table)
    small = cfg.model_copy(
        update={"serving": cfg.serving.model_copy(update={"batch_chunk_size": 7})}
    )
    model = load_model(uri, small)
    assert model.chunk_size == 7 and model.class_names == ["healthy", "MI"]
    whole = load_model(uri, cfg).predict_proba(x)
    np.testing.assert_allclose(model.predict_proba(x), whole, atol=1e-6)  # 16 chunks, same rows
    assert model.predict_proba(x[:0]).shape == (0, 2)


@pytest.mark.integration
def test_a_classical_model_predicts_on_the_serving_threads(ptb_champion, table) -> None:
    """Fitted with classical.n_jobs, loaded for prediction with serving.n_jobs."""
    cfg, uri = ptb_champion
    x, _ = xy(table)

    def loaded(n_jobs: int):
        serving = cfg.serving.model_copy(update={"n_jobs": n_jobs})
        return load_model(uri, cfg.model_copy(update={"serving": serving}))

    two, every = loaded(2), loaded(-1)
    estimator = two.pyfunc.unwrap_python_model().predictor
    assert estimator.get_params()["n_jobs"] == 2
    assert every.pyfunc.unwrap_python_model().predictor.get_params()["n_jobs"] == -1
    np.testing.assert_allclose(two.predict_proba(x), every.predict_proba(x), atol=1e-12)


def test_serving_threads_are_a_count_or_every_core(cfg_smoke) -> None:
    from pydantic import ValidationError

    for bad in (0, -2):
        with pytest.raises(ValidationError, match="n_jobs"):
            cfg_smoke.serving.model_validate({**cfg_smoke.serving.model_dump(), "n_jobs": bad})


# ---- records ----------------------------------------------------------------------------------


def test_record_beats_match_the_data_pipeline(cfg_smoke) -> None:
    from ecgops.data.sources import mitdb, ptbxl

    beats, note = record_beats(cfg_smoke, "ptb", PTBXL)
    reference = ptbxl.record_beats(cfg_smoke, PTBXL, patient="p", label=0).beats
    np.testing.assert_array_equal(beats, reference)
    assert "lead II" in note

    beats, note = record_beats(cfg_smoke, "mitbih", MITDB)
    np.testing.assert_array_equal(beats, mitdb.record_beats(cfg_smoke, MITDB).beats)
    assert "annotated R-peaks" in note


def flat_record(folder: Path) -> Path:
    import wfdb

    wfdb.wrsamp(
        "flat", fs=500, units=["mV"], sig_name=["II"], p_signal=np.zeros((5000, 1)),
        fmt=["16"], adc_gain=[1000.0], baseline=[0], write_dir=str(folder),
    )  # fmt: skip
    return folder / "flat"


@pytest.mark.integration
def test_one_row_per_record_in_all_three_layouts(ptb_champion, tmp_path, capsys) -> None:
    cfg, uri = ptb_champion
    flat = flat_record(tmp_path)
    out = tmp_path / "records.csv"

    summary = prediction.predict_records(
        cfg, "ptb", [PTBXL, PTBDB, MITDB, flat], out, model_uri=uri
    )

    rows = pd.read_csv(out, keep_default_na=False)
    assert list(rows.columns) == ["record", "n_beats", "pred", "pred_name", "p_0", "p_1"]
    assert rows["record"].tolist() == [str(p) for p in (PTBXL, PTBDB, MITDB, flat)]
    assert (rows["n_beats"][:3] > 0).all() and rows["n_beats"][3] == 0
    assert set(rows["pred_name"][:3]) <= {"healthy", "MI"} and rows["pred"][3] == ""
    p = rows[["p_0", "p_1"]][:3].astype(float).to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert "no usable beat" in capsys.readouterr().err and str(flat) in summary["no_beats"]
    # the record rule learned on validation records at registration is the one applied
    mv = mlflow_client(cfg).get_model_version_by_alias(cfg.experiment_name("ptb"), "champion")
    assert summary["rule"] == rule_from_tag(mv.tags[RULE_TAG])
    assert summary["rule"]["kind"] in {"argmax", "threshold"}


@pytest.mark.integration
def test_missing_record_is_an_error_and_writes_nothing(ptb_champion, tmp_path) -> None:
    cfg, uri = ptb_champion
    with pytest.raises(DataError, match=r"nope\.hea: WFDB header not found"):
        prediction.predict_records(cfg, "ptb", [PTBXL, tmp_path / "nope"], tmp_path / "r.csv", uri)
    assert not (tmp_path / "r.csv").exists()
