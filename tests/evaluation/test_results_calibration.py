"""save_evaluation with a calibrator: test figures as served, the calibration entry, the report.

The model is a fully grown decision tree trained on the real PTB beat fixture (confidence 1 on
every beat: badly calibrated); the calibrator is fitted on its validation predictions only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from ecgops.config import Config, load_config
from ecgops.evaluation.calibration import fit_calibrator
from ecgops.evaluation.metrics import classification_metrics
from ecgops.evaluation.report import calibration_section
from ecgops.evaluation.results import _flat_metrics, load_all_metrics, save_evaluation
from ecgops.models.classical import predict_proba_full
from ecgops.schema import labels, signals

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HOLDOUT = 0.6  # val + test share of the fixture rows, split in half
SEED = 0


def _project(tmp_path: Path) -> Config:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return load_config(root=tmp_path, profile="smoke")


def _tree_predictions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    df = pd.read_parquet(FIXTURES / "beats_ptb.parquet")
    x, y = signals(df), labels(df)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=HOLDOUT, stratify=y, random_state=SEED)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=SEED)
    tree = DecisionTreeClassifier(random_state=SEED).fit(x[train], y[train])
    k = int(y.max()) + 1
    return (
        y[val],
        predict_proba_full(tree, x[val], k),
        y[test],
        predict_proba_full(tree, x[test], k),
    )


@pytest.fixture
def saved(tmp_path: Path, clean_env: None):
    cfg = _project(tmp_path)
    y_val, p_val, y_test, p_test = _tree_predictions()
    cal = fit_calibrator("isotonic", y_val, p_val, cfg.class_names("ptb"))
    record = save_evaluation(
        cfg,
        task="ptb",
        scheme="beat",
        name="tree",
        family="classical",
        y_test=y_test,
        proba_test=p_test,
        y_val=y_val,
        proba_val=p_val,
        calibrator=cal,
    )
    return cfg, record, cal, (y_val, p_val, y_test, p_test)


def test_test_figures_are_the_served_probabilities_and_val_stays_raw(saved) -> None:
    cfg, record, cal, (y_val, p_val, y_test, p_test) = saved
    served = cal.transform(p_test)
    expected = classification_metrics(y_test, served)
    assert {k: record["test"][k] for k in expected} == pytest.approx(expected, nan_ok=True)
    assert record["val"] == classification_metrics(y_val, p_val)
    entry = record["calibration"]
    assert entry["method"] == "isotonic" and entry["skipped_reason"] is None
    assert entry["fitted"]["n_fit"] == len(y_val) == entry["val"]["n"]
    assert entry["test"]["n"] == len(y_test)
    assert record["test"]["ece"] == pytest.approx(entry["test"]["ece_after"])
    assert entry["test"]["ece_after"] < entry["test"]["ece_before"]  # a one-hot tree
    assert not any(k.startswith("bins_") for part in ("val", "test") for k in entry[part])


def test_calibration_bins_figure_and_flat_metrics_are_written(saved) -> None:
    cfg, record, _, (y_val, _, y_test, _) = saved
    out = cfg.path("outputs")
    bins = pd.read_csv(out / "plots" / "ptb" / "beat" / "tree" / "reliability.csv")
    counts = bins.groupby(["part", "stage"])["count"].sum().to_dict()
    assert counts == {
        ("test", "after"): len(y_test),
        ("test", "before"): len(y_test),
        ("val", "after"): len(y_val),
        ("val", "before"): len(y_val),
    }
    assert (out / "figures" / "ptb" / "beat" / "tree" / "calibration_before_after.png").exists()
    flat = _flat_metrics(record)
    for part in ("val", "test"):
        for key in ("ece_before", "ece_after", "brier_before", "brier_after"):
            assert flat[f"calibration_{part}_{key}"] == pytest.approx(
                record["calibration"][part][key]
            )


def test_the_report_lists_test_ece_and_brier_before_and_after(saved) -> None:
    cfg, record, _, _ = saved
    section = calibration_section(cfg, load_all_metrics(cfg))
    test = record["calibration"]["test"]
    row = next(line for line in section.markdown.splitlines() if "`tree`" in line)
    assert "isotonic" in row
    assert f"{test['ece_before']:.3f} → {test['ece_after']:.3f}" in row
    assert f"{test['brier_before']:.3f} → {test['brier_after']:.3f}" in row
    assert [path.name for _, path in section.figures] == ["calibration_before_after.png"]


def test_without_a_calibrator_nothing_changes(tmp_path: Path, clean_env: None) -> None:
    cfg = _project(tmp_path)
    y_val, p_val, y_test, p_test = _tree_predictions()
    record = save_evaluation(
        cfg,
        task="ptb",
        scheme="beat",
        name="tree",
        family="classical",
        y_test=y_test,
        proba_test=p_test,
        y_val=y_val,
        proba_val=p_val,
    )
    assert "calibration" not in record
    expected = classification_metrics(y_test, p_test)
    assert {k: record["test"][k] for k in expected} == pytest.approx(expected, nan_ok=True)
    assert calibration_section(cfg, [record]).markdown == "_No calibration recorded._"
