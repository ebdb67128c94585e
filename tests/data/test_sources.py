"""Raw layouts to labelled beats: AAMI mapping, PTB-XL and PTB Diagnostic labels, ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgops.config import Config
from ecgops.data.sources import SourceReport, mitdb, ptbdb, ptbxl
from ecgops.errors import DataError

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"


# ---- MIT-BIH ----------------------------------------------------------------------------


def test_aami_mapping(cfg_smoke: Config) -> None:
    mapping = mitdb.symbol_labels(cfg_smoke.data.mitbih.beat_symbols)
    expected = {
        0: ["N", "L", "R", "e", "j"],
        1: ["A", "a", "J", "S"],
        2: ["V", "E"],
        3: ["F"],
        4: ["/", "f", "Q"],
    }
    for label, symbols in expected.items():
        assert all(mapping[s] == label for s in symbols)
    for not_a_beat in ["+", "~", "|", "x", '"', "!", "[", "]"]:
        assert not_a_beat not in mapping


def test_a_symbol_in_two_classes_is_refused() -> None:
    with pytest.raises(ValueError, match="'N' is listed under two classes"):
        mitdb.symbol_labels({"N": ["N"], "S": ["N"]})


def test_mitbih_record_labels_and_ids(cfg_smoke: Config) -> None:
    rec = mitdb.record_beats(cfg_smoke, RAW / "mitdb" / "208")
    assert rec.patient == rec.record == "208" and rec.source == "mitdb"
    assert rec.beats.shape[1] == 187 and len(rec.labels) == len(rec.beats)
    counts = np.bincount(rec.labels, minlength=5)
    assert counts[3] > 0 and counts[2] > 0 and counts[0] > counts[2]  # F, V, mostly N
    assert rec.stats.hr_bpm and 60 < rec.stats.hr_bpm < 150


def test_paced_record_gives_q_beats_on_the_fallback_lead(cfg_smoke: Config) -> None:
    report = SourceReport("mitdb", RAW / "mitdb")
    rec = mitdb.record_beats(cfg_smoke, RAW / "mitdb" / "104", report)
    assert report.fallback_lead == {"104": "V5"}
    assert (rec.labels == 4).mean() > 0.9


def test_every_listed_record_is_read_and_max_records_caps(cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory(data={"max_records": 2})
    report = SourceReport("mitdb", RAW / "mitdb")
    records = [r.record for r in mitdb.iter_records(cfg, RAW / "mitdb", report)]
    assert records == ["104", "114"]  # nothing is held out of the shared data any more
    assert report.excluded == {"max_records": 5}


# ---- PTB-XL -----------------------------------------------------------------------------

CLASSES = {"IMI": "MI", "AMI": "MI", "NORM": "NORM", "LVH": "HYP", "NDT": "STTC"}


@pytest.mark.parametrize(
    ("codes", "label"),
    [
        ({"NORM": 100.0, "SR": 0.0}, 0),  # rhythm codes are not diagnostic
        ({"IMI": 15.0, "NORM": 100.0}, 1),  # MI wins, whatever the likelihood
        ({"AMI": 0.0}, 1),
        ({"NORM": 80.0, "LVH": 50.0}, None),  # NORM plus another class: excluded
        ({"NDT": 100.0}, None),
        ({"SR": 0.0}, None),  # no diagnostic code at all
    ],
)
def test_ptbxl_record_label(codes: dict, label: int | None) -> None:
    assert ptbxl.record_label(codes, CLASSES, "MI", "NORM") == label


def test_ptbxl_labels_of_the_fixture(cfg_smoke: Config) -> None:
    meta = ptbxl.label_records(cfg_smoke, RAW / "ptbxl")
    assert len(meta) == 16
    labels = meta["label"]
    assert ((labels == 1).sum(), (labels == 0).sum(), labels.isna().sum()) == (6, 6, 4)
    assert meta.loc[[1, 2], "label"].tolist() == [0, 0]  # NORM (the README's first records)


def test_ptbxl_patient_ids_and_two_records_of_one_patient(cfg_smoke: Config) -> None:
    report = SourceReport("ptbxl", RAW / "ptbxl")
    recs = list(ptbxl.iter_records(cfg_smoke, RAW / "ptbxl", report))
    assert len(recs) == 12 and report.excluded == {"other_diagnosis": 4, "holdout_fold": 0}
    by_patient = {}
    for r in recs:
        by_patient.setdefault(r.patient, []).append(r.record)
        assert r.source == "ptbxl" and set(r.labels) <= {0, 1}
    assert by_patient["ptbxl-21551"] == ["00177_hr", "00181_hr"]
    assert all(p.startswith("ptbxl-") and not p.endswith(".0") for p in by_patient)


def test_ptbxl_holdout_folds_are_skipped(cfg_smoke_factory) -> None:
    cfg = cfg_smoke_factory(data={"ptbxl": {"holdout_folds": [4]}})
    report = SourceReport("ptbxl", RAW / "ptbxl")
    records = [r.record for r in ptbxl.iter_records(cfg, RAW / "ptbxl", report)]
    assert "00177_hr" not in records and report.excluded["holdout_fold"] >= 2


def test_ptbxl_bad_scp_codes_names_the_csv(cfg_smoke: Config, tmp_path: Path) -> None:
    folder = tmp_path / "ptbxl"
    shutil.copytree(RAW / "ptbxl", folder)
    db = folder / "ptbxl_database.csv"
    db.write_text(db.read_text().replace("{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", "{oops"))
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: ecg_id 1: bad scp_codes"):
        ptbxl.label_records(cfg_smoke, folder)


def test_ptbxl_missing_database_names_it(cfg_smoke: Config, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ptbxl_database\.csv: not found"):
        ptbxl.label_records(cfg_smoke, tmp_path)


# ---- PTB Diagnostic ---------------------------------------------------------------------


def test_admission_reason_and_label(cfg_smoke: Config) -> None:
    db = cfg_smoke.data.ptbdb
    comments = ["age: 63", "Reason for admission: Myocardial infarction", "Smoker: no"]
    assert ptbdb.admission_reason(comments) == "Myocardial infarction"
    assert ptbdb.reason_label("Myocardial infarction", db.mi_reason, db.healthy_reason) == 1
    assert ptbdb.reason_label("Healthy control", db.mi_reason, db.healthy_reason) == 0
    assert ptbdb.reason_label("Cardiomyopathy", db.mi_reason, db.healthy_reason) is None


def test_ptbdb_sample_records(cfg_smoke: Config) -> None:
    report = SourceReport("ptbdb", RAW / "ptbdb-sample")
    recs = {r.record: r for r in ptbdb.iter_records(cfg_smoke, RAW / "ptbdb-sample", report)}
    assert set(recs) == {"patient205/s0426_re", "patient214/s0436_re"}
    assert recs["patient205/s0426_re"].patient == "ptbdb-patient205"
    assert set(recs["patient205/s0426_re"].labels) == {1}  # Myocardial infarction
    assert set(recs["patient214/s0436_re"].labels) == {0}  # Healthy control
    assert all(len(r.beats) >= 2 for r in recs.values())


def test_ptbdb_other_reason_is_excluded(cfg_smoke: Config, tmp_path: Path) -> None:
    folder = tmp_path / "ptbdb"
    shutil.copytree(RAW / "ptbdb-sample", folder)
    hea = folder / "patient214" / "s0436_re.hea"
    hea.write_text(hea.read_text().replace("Healthy control", "Cardiomyopathy"))
    report = SourceReport("ptbdb", folder)
    recs = [r.record for r in ptbdb.iter_records(cfg_smoke, folder, report)]
    assert recs == ["patient205/s0426_re"] and report.excluded == {"other_diagnosis": 1}


def test_ptbdb_header_without_reason_names_it(cfg_smoke: Config, tmp_path: Path) -> None:
    folder = tmp_path / "ptbdb"
    shutil.copytree(RAW / "ptbdb-sample", folder)
    hea = folder / "patient214" / "s0436_re.hea"
    hea.write_text(hea.read_text().replace("Reason for admission", "Reason"))
    with pytest.raises(DataError, match=r"s0436_re\.hea: no 'Reason for admission'"):
        list(ptbdb.iter_records(cfg_smoke, folder, SourceReport("ptbdb", folder)))
