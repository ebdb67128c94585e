"""Split schemes: stratified beats, inter-patient DS1/DS2, grouped PTB folds, the sealed gate
set (in no part of any scheme or fold); determinism."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config
from ecgops.data import splits
from ecgops.data.build import table_path
from ecgops.errors import DataError


@pytest.fixture(scope="module")
def assigned(smoke_data: Config) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    out = {}
    for task in ("mitbih", "ptb"):
        df = pd.read_parquet(table_path(smoke_data, task))
        out[task] = (df, splits.load_assignments(smoke_data, task, n_rows=len(df)))
    return out


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_split_file_layout(assigned, task: str) -> None:
    df, sp = assigned[task]
    assert list(sp.columns) == ["row", "beat", "patient", "patient_fold"]
    assert sp["row"].tolist() == list(range(len(df)))
    assert set(sp["beat"]) == {"train", "val", "test", "gate"}
    assert set(sp["patient"]) <= {"train", "val", "test", "gate", "unused"}


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_beat_scheme_is_stratified(assigned, smoke_data: Config, task: str) -> None:
    df, sp = assigned[task]
    open_ = sp["beat"] != "gate"
    df, sp = df[open_], sp[open_]
    test = sp["beat"] == "test"
    assert test.mean() == pytest.approx(smoke_data.splits.test_size, abs=0.02)
    val_share = (sp["beat"] == "val").sum() / (~test).sum()
    assert val_share == pytest.approx(smoke_data.splits.val_size, abs=0.02)
    overall = df["label"].value_counts(normalize=True)
    in_test = df.loc[test, "label"].value_counts(normalize=True)
    assert (in_test - overall).abs().max() < 0.05


def test_ptb_patient_scheme_has_no_patient_in_two_parts(assigned) -> None:
    df, sp = assigned["ptb"]
    parts_per_patient = df.groupby(sp["patient"].to_numpy())["patient"].unique()
    seen = [set(p) for p in parts_per_patient]
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert not seen[i] & seen[j]
    assert {"train", "val", "test"} <= set(sp["patient"])


def test_ptb_folds_partition_patients_and_fold_0_is_the_test_part(assigned, smoke_data):
    df, sp = assigned["ptb"]
    folds = sp["patient_fold"]
    assert set(folds) == {-1, *range(smoke_data.splits.cv_folds)}
    assert ((folds == -1) == (sp["patient"] == "gate")).all()  # the gate set is in no fold
    assert df.groupby(folds.to_numpy())["patient"].unique().explode().is_unique
    assert ((folds == 0) == (sp["patient"] == "test")).all()


def test_mitbih_patient_scheme_is_ds1_ds2(assigned, smoke_data: Config) -> None:
    df, sp = assigned["mitbih"]
    m = smoke_data.data.mitbih
    records = lambda part: set(df.loc[sp["patient"] == part, "record"])  # noqa: E731
    assert records("train") | records("val") <= set(m.ds1)
    assert records("test") <= set(m.ds2) and records("test")
    assert records("unused") == {"104"}  # paced: in neither DS1 nor DS2
    assert records("gate") == {"114"}  # the smoke table's DS1 records are 114, 208, 209
    assert not records("train") & records("val")  # grouped: whole records
    assert records("val")
    assert (sp["patient_fold"] == -1).all()


def test_mitbih_beat_level_val_option(smoke_data: Config, cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory(splits={"mitbih_patient_val": "beat"})
    df = pd.read_parquet(table_path(smoke_data, "mitbih"))
    sp = splits.assign_splits(df, cfg, "mitbih")
    ds1 = df["record"].isin(cfg.data.mitbih.ds1) & (sp["patient"] != "gate")
    assert set(sp.loc[ds1, "patient"]) == {"train", "val"}
    val_records = set(df.loc[sp["patient"] == "val", "record"])
    assert val_records == set(df.loc[ds1, "record"])  # beats of every open DS1 record


def test_splits_are_deterministic_and_seeded(smoke_data: Config, cfg_smoke_factory) -> None:
    df = pd.read_parquet(table_path(smoke_data, "ptb"))
    a = splits.assign_splits(df, smoke_data, "ptb")
    b = splits.assign_splits(df, smoke_data, "ptb")
    pd.testing.assert_frame_equal(a, b)
    other = splits.assign_splits(df, cfg_smoke_factory(seed=7), "ptb")
    assert not a["beat"].equals(other["beat"])


def test_load_split_returns_the_parts(smoke_data: Config, assigned) -> None:
    df, sp = assigned["ptb"]
    parts = splits.load_split(smoke_data, "ptb", "patient")
    assert list(parts) == ["train", "val", "test"]
    assert sum(len(p) for p in parts.values()) == (sp["patient"] != "gate").sum()
    assert set(parts["test"]["patient"]) == set(df.loc[sp["patient"] == "test", "patient"])
    with pytest.raises(ValueError, match="unknown scheme"):
        splits.load_split(smoke_data, "ptb", "random")


def test_iter_patient_folds(smoke_data: Config, assigned) -> None:
    df, sp = assigned["ptb"]
    df = df[(sp["patient"] != "gate").to_numpy()]
    folds = list(splits.iter_patient_folds(smoke_data, "ptb"))
    assert len(folds) == smoke_data.splits.cv_folds
    tested = []
    for train, val, test in folds:
        assert len(train) + len(val) + len(test) == len(df)
        assert not set(train["patient"]) & set(test["patient"])
        assert not set(val["patient"]) & (set(train["patient"]) | set(test["patient"]))
        tested += list(test["patient"].unique())
    assert sorted(tested) == sorted(df["patient"].unique())
    first = splits.load_split(smoke_data, "ptb", "patient")
    pd.testing.assert_frame_equal(folds[0][2], first["test"])
    pd.testing.assert_frame_equal(folds[0][1], first["val"])
    with pytest.raises(DataError, match="no grouped CV folds"):
        next(splits.iter_patient_folds(smoke_data, "mitbih"))


def test_stale_or_missing_split_is_refused(smoke_data: Config, cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory()
    with pytest.raises(DataError, match=r"ptb\.parquet: not found; run `ecgops data build"):
        splits.make_splits(cfg, "ptb")
    cfg.path("processed").mkdir(parents=True)
    shutil.copyfile(table_path(smoke_data, "ptb"), table_path(cfg, "ptb"))
    with pytest.raises(DataError, match=r"splits/ptb\.parquet: not found; run `ecgops data split"):
        splits.load_split(cfg, "ptb", "beat")
    splits.make_splits(cfg, "ptb")
    df = pd.read_parquet(table_path(cfg, "ptb"))
    df.iloc[:-1].to_parquet(table_path(cfg, "ptb"), index=False)
    with pytest.raises(DataError, match="made for another version"):
        splits.load_split(cfg, "ptb", "beat")


def test_grouped_folds_need_enough_patients() -> None:
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="2 patients cannot make 3 grouped folds"):
        splits.grouped_folds(labels, np.array(["a", "a", "b", "b"]), 3, 0)


# ---- the sealed gate set ----------------------------------------------------------------------


@pytest.mark.parametrize("task", ["mitbih", "ptb"])
def test_gate_rows_are_gate_in_every_scheme_and_fold(smoke_data: Config, assigned, task) -> None:
    df, sp = assigned[task]
    gate = (sp["patient"] == "gate").to_numpy()
    assert gate.any() and (sp["beat"].to_numpy()[gate] == "gate").all()
    assert ((sp["beat"] == "gate") == (sp["patient"] == "gate")).all()
    assert (sp["patient_fold"].to_numpy()[gate] == -1).all()
    column = "record" if task == "mitbih" else "patient"
    gate_groups = set(df.loc[gate, column])
    assert not gate_groups & set(df.loc[~gate, column])  # whole patients / records
    for scheme in ("beat", "patient"):
        for part in splits.load_split(smoke_data, task, scheme).values():
            assert not set(part[column]) & gate_groups
    if task == "ptb":
        for fold in splits.iter_patient_folds(smoke_data, task):
            assert not set(pd.concat(fold)[column]) & gate_groups
    loaded = splits.load_gate(smoke_data, task)
    pd.testing.assert_frame_equal(loaded, df[gate].reset_index(drop=True))
    listed = json.loads(splits.gate_path(smoke_data, task).read_text())
    assert listed["groups"] == sorted(gate_groups) and listed["rows"] == gate.sum()


def test_ptb_gate_holds_both_classes_and_ignores_the_experiment_seed(
    smoke_data: Config, cfg_smoke_factory
) -> None:
    df = pd.read_parquet(table_path(smoke_data, "ptb"))
    gate = splits.assign_splits(df, smoke_data, "ptb")["patient"] == "gate"
    assert set(df.loc[gate, "label"]) == {0, 1}
    n_patients = df["patient"].nunique()
    assert df.loc[gate, "patient"].nunique() == pytest.approx(
        n_patients * smoke_data.splits.gate.ptb.fraction, abs=1
    )
    other_seed = splits.assign_splits(df, cfg_smoke_factory(seed=7), "ptb")
    assert ((other_seed["patient"] == "gate") == gate).all()  # sealed: fixed by its own seed
    reseeded = cfg_smoke_factory(splits={"gate": {"seed": 3}})
    moved = splits.assign_splits(df, reseeded, "ptb")["patient"] == "gate"
    assert not (moved == gate).all()


def test_gate_records_must_be_ds1(smoke_data: Config, cfg_smoke_factory) -> None:
    df = pd.read_parquet(table_path(smoke_data, "mitbih"))
    cfg = cfg_smoke_factory(splits={"gate": {"mitbih": {"records": ["200"]}}})  # a DS2 record
    with pytest.raises(ValueError, match=r"\['200'\] are not DS1 records"):
        splits.assign_splits(df, cfg, "mitbih")
    absent = cfg_smoke_factory(splits={"gate": {"mitbih": {"records": ["223"]}}})
    drawn = splits.assign_splits(df, absent, "mitbih")["patient"] == "gate"
    drawn_records = set(df.loc[drawn, "record"])
    assert len(drawn_records) == 1 and drawn_records <= set(absent.data.mitbih.ds1)


def test_a_split_without_gate_rows_is_refused_by_load_gate(smoke_data, cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory()
    cfg.path("processed").mkdir(parents=True)
    shutil.copyfile(table_path(smoke_data, "ptb"), table_path(cfg, "ptb"))
    splits.make_splits(cfg, "ptb")
    old = pd.read_parquet(splits.split_path(cfg, "ptb"))
    old.loc[old["patient"] == "gate", ["beat", "patient"]] = "train"  # made before the gate
    old.to_parquet(splits.split_path(cfg, "ptb"), index=False)
    with pytest.raises(DataError, match="no sealed gate rows; rerun"):
        splits.load_gate(cfg, "ptb")
