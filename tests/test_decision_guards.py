"""Guards: no decision step reads a test row or a sealed gate-set row (both tasks, both schemes).

The decision steps are run for real on the smoke tables, each instrumented at the point where
it receives its data; every beat it gets is mapped back to its row of the beat table (beats are
unique), and the rows are compared with the split table:

- ``early_stopping``: the validation beats a deep training (the main run) stops on;
- ``grid_search``: the beats the elastic-net grid search cross-validates on (and, under the
  patient scheme, that it gets the patients as groups when there are enough of them);
- ``calibrator``: the beats whose predictions the served model's calibrator is fitted on;
- ``imbalance``: the folds ``compare_imbalance`` chooses by (PTB patient scheme: grouped
  folds of the training and validation patients), or the validation part it chooses by;
- ``record_rule``: the beats the record-level threshold is fitted on at registration;
- ``gate``: the beats the promotion gate scores, which must be exactly the gate set.

Every step but the gate must see neither the scheme's test rows nor the gate rows. The steps
are those of the main run (and of the selection); the models of the reported grouped CV
(PTB patient scheme) are fitted per fold on that fold's training patients, as CV does, and
only their mean +- std is reported: no choice reads it (``compare_imbalance`` picks by
:func:`ecgops.training.selection.selection_folds`, guarded here).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import smoke_config

from ecgops.config import Config
from ecgops.data import splits
from ecgops.schema import signals

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(smoke_data: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A project of its own (outputs, MLflow store) on copies of the smoke tables and splits."""
    cfg = smoke_config(tmp_path_factory.mktemp("guards"))
    for key in ("processed", "splits"):
        shutil.copytree(smoke_data.path(key), cfg.path(key))
    return cfg


class Ledger:
    """Rows of the beat table that each decision step received."""

    def __init__(self, cfg: Config, task: str) -> None:
        beats = signals(splits.read_table(cfg, task))
        self.index = {row.tobytes(): i for i, row in enumerate(beats)}
        assert len(self.index) == len(beats), "duplicate beats: rows cannot be told apart"
        self.seen: dict[str, set[int]] = defaultdict(set)
        self.by_output: dict[int, set[int]] = {}
        self.fold: int | None = None  # the fold being fitted (None: the main run)


def beat_rows(ledger: Ledger, beats: pd.DataFrame | np.ndarray) -> set[int]:
    """Table rows of beats: a beat table, or model input rows (n, 187 [+ context])."""
    from ecgops.schema import BEAT_LEN

    x = signals(beats) if isinstance(beats, pd.DataFrame) else np.asarray(beats)[:, :BEAT_LEN]
    return {ledger.index[np.ascontiguousarray(r, dtype=np.float32).tobytes()] for r in x}


def instrument(monkeypatch: pytest.MonkeyPatch, ledger: Ledger, grid_groups: list) -> None:
    """Wrap each decision step's entry point to record the rows it gets."""
    from sklearn.model_selection import GridSearchCV

    import ecgops.evaluation.records as records
    import ecgops.registry.promote as promote
    import ecgops.training.classical as classical
    from ecgops.training.classical import ClassicalRun
    from ecgops.training.deep import DeepRun
    from ecgops.training.run import TrainingRun

    def wrap_predict(cls: type) -> None:
        original = cls.predict

        def predict(self, fitted, beats, timed):
            out = original(self, fitted, beats, timed)
            ledger.by_output[id(out)] = beat_rows(ledger, beats)
            return out

        monkeypatch.setattr(cls, "predict", predict)

    for cls in (ClassicalRun, DeepRun):
        wrap_predict(cls)

    classical_fit = ClassicalRun.fit

    def fit_classical(self, train, val, fold):
        ledger.fold = fold
        try:
            return classical_fit(self, train, val, fold)
        finally:
            ledger.fold = None

    monkeypatch.setattr(ClassicalRun, "fit", fit_classical)
    deep_fit = DeepRun.fit

    def fit(self, train, val, fold):
        if fold is None:
            ledger.seen["early_stopping"] |= beat_rows(ledger, val)
        return deep_fit(self, train, val, fold)

    monkeypatch.setattr(DeepRun, "fit", fit)

    calibrate = TrainingRun.calibrate

    def calibrate_recorded(self, y_val, proba_val):
        if proba_val is not None:
            ledger.seen["calibrator"] |= ledger.by_output[id(proba_val)]
        return calibrate(self, y_val, proba_val)

    monkeypatch.setattr(TrainingRun, "calibrate", calibrate_recorded)

    grid_fit = GridSearchCV.fit

    def grid(self, X, y=None, **params):
        if ledger.fold is None:
            ledger.seen["grid_search"] |= beat_rows(ledger, X)
            grid_groups.append(params.get("groups"))
        return grid_fit(self, X, y, **params)

    monkeypatch.setattr(GridSearchCV, "fit", grid)

    selection_score = classical.selection_score

    def selection(trainer, folds):
        for fit_rows, scored in folds:
            ledger.seen["imbalance"] |= beat_rows(ledger, fit_rows) | beat_rows(ledger, scored)
        return selection_score(trainer, folds)

    monkeypatch.setattr(classical, "selection_score", selection)

    record_probabilities = records.record_probabilities

    def rule(model, frame, *args, **kwargs):
        ledger.seen["record_rule"] |= beat_rows(ledger, frame)
        return record_probabilities(model, frame, *args, **kwargs)

    monkeypatch.setattr(records, "record_probabilities", rule)

    evaluate = promote.evaluate

    def gate(cfg, task, version, data, workdir, *rest, **options):
        ledger.seen["gate"] |= beat_rows(ledger, data[0])
        return evaluate(cfg, task, version, data, workdir, *rest, **options)

    monkeypatch.setattr(promote, "evaluate", gate)


@pytest.mark.parametrize("scheme", ["beat", "patient"])
@pytest.mark.parametrize("task", ["ptb", "mitbih"])
def test_no_decision_step_sees_test_or_gate_rows(
    project: Config, monkeypatch: pytest.MonkeyPatch, task: str, scheme: str
) -> None:
    from ecgops.registry.promote import promote
    from ecgops.registry.register import register_best
    from ecgops.training.classical import compare_imbalance, train_classical
    from ecgops.training.deep import train_deep

    for name in ("ECGOPS_PROFILE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    ledger, grid_groups = Ledger(project, task), []
    instrument(monkeypatch, ledger, grid_groups)
    parts = splits.load_assignments(project, task)[scheme].to_numpy()
    gate = set(np.flatnonzero(parts == splits.GATE))
    test = set(np.flatnonzero(parts == splits.TEST))
    assert gate and test

    train_classical(project, task, scheme, "lr", "raw")
    train_deep(project, task, scheme, "cnn")
    chosen = compare_imbalance(project, task, scheme, "rf", "raw", ("none", "class_weight"))
    register_best(project, task, scheme)
    decision = promote(project, task, dry_run=True)

    steps = ("early_stopping", "grid_search", "calibrator", "record_rule", "gate")
    assert all(ledger.seen[s] for s in steps), {s: len(ledger.seen[s]) for s in steps}
    for step, rows in ledger.seen.items():
        if step != "gate":
            assert not rows & test, f"{step} read {len(rows & test)} {scheme} test rows"
            assert not rows & gate, f"{step} read {len(rows & gate)} gate rows"
    assert ledger.seen["gate"] == gate  # the gate reads the gate set, all of it, only it
    assert decision.eval_data.startswith(f"{task} sealed gate set")
    grouped = scheme == "patient" and task == "ptb"  # PTB: enough training patients to group
    assert all((g is not None) == grouped for g in grid_groups), "grid search folds"
    if splits.has_folds(project, task, scheme):
        assert chosen["selected_on"] == "selection_cv.balanced_accuracy_mean"
        assert ledger.seen["imbalance"]
    else:
        assert chosen["selected_on"] == "val.balanced_accuracy"
        val = {v: e["val"]["balanced_accuracy"] for v, e in chosen["variants"].items()}
        assert chosen["winner"] == max(val, key=val.get)


def test_the_ledger_maps_beats_to_rows(project: Config) -> None:
    ledger = Ledger(project, "ptb")
    table = splits.read_table(project, "ptb")
    assert beat_rows(ledger, table.iloc[[3, 1]]) == {1, 3}
    assert beat_rows(ledger, signals(table)[:2]) == {0, 1}
    assert Path(splits.split_path(project, "ptb")).is_file()


def test_the_reports_best_model_is_chosen_on_validation_only() -> None:
    from ecgops.evaluation.report import _best

    def record(name: str, val: float | None, test: float) -> dict:
        entry = {"task": "ptb", "scheme": "patient", "name": name}
        entry["test"] = {"balanced_accuracy": test}
        entry["val"] = {"balanced_accuracy": val} if val is not None else None
        return entry

    picked = _best([record("a", 0.7, 0.6), record("b", 0.6, 0.9), record("c", None, 1.0)],
                   "ptb", "patient")  # fmt: skip
    assert picked["name"] == "a"  # not b (best on test), never c (no validation)
    assert _best([record("c", None, 1.0)], "ptb", "patient") is None
