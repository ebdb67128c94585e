"""Multi-lead PTB beats on the real fixtures: lead order, shared R-peaks, per-lead
normalisation, validation, splits on the single-lead patients, and a record missing a lead.

The fixtures (``scripts/make_fixtures.py``) keep leads I, II and V1 of each PTB-XL record and
i, ii, v1 of the two PTB Diagnostic records, so the smoke profile's ``multilead.leads`` is
``[I, II, V1]``; the 12-lead default is checked against them as bad input.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from typer.testing import CliRunner

from ecgops.config import Config
from ecgops.data import beats as bt
from ecgops.data import multilead as ml
from ecgops.data import multilead_splits as ms
from ecgops.data import wfdb_io
from ecgops.data.build import collect, save_table, table_path
from ecgops.data.splits import iter_patient_folds, load_assignments, make_splits
from ecgops.data.validation_multilead import validate_multilead
from ecgops.errors import DataError, ValidationFailed

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"
PTBXL_RECORD = RAW / "ptbxl" / "records500" / "00000" / "00008_hr"
PTBDB_RECORD = RAW / "ptbdb-sample" / "patient205" / "s0426_re"
LEADS = ["I", "II", "V1"]
TWELVE = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def write_copy(src: Path, dst_dir: Path, keep: list[str], rename=str.lower) -> Path:
    """Write a record with only the ``keep`` leads, in that order, names through ``rename``."""
    rec = wfdb.rdrecord(str(src), physical=True)
    idx = [[n.lower() for n in rec.sig_name].index(k.lower()) for k in keep]
    dst_dir.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        src.name,
        fs=rec.fs,
        units=[rec.units[i] for i in idx],
        sig_name=[rename(rec.sig_name[i]) for i in idx],
        p_signal=rec.p_signal[:, idx],
        fmt=["16"] * len(idx),
        adc_gain=[rec.adc_gain[i] for i in idx],
        baseline=[rec.baseline[i] for i in idx],
        comments=rec.comments,
        write_dir=str(dst_dir),
    )
    return dst_dir / src.name


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, pd.DataFrame]]:
    """The single-lead ptb table and split, and the multi-lead table and split, from fixtures."""
    from conftest import ENV_OVERRIDES, smoke_config

    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_OVERRIDES:
            mp.delenv(name, raising=False)
        cfg = smoke_config(tmp_path_factory.mktemp("ml"), paths={"raw": str(RAW)})
        save_table(cfg, "ptb", *collect(cfg, "ptb"))
        make_splits(cfg, "ptb")
        ml.build_multilead(cfg)
        ms.make_multilead_splits(cfg)
        yield cfg, pd.read_parquet(table_path(cfg, ml.TASK))


# ---- reading leads ----------------------------------------------------------------------------


def test_leads_are_matched_by_name_in_the_configured_order(tmp_path: Path) -> None:
    shuffled = write_copy(PTBXL_RECORD, tmp_path, ["V1", "I", "II"], rename=str.lower)
    original = ml.read_leads(PTBXL_RECORD, LEADS)
    got = ml.read_leads(shuffled, LEADS)
    assert got.leads == LEADS and got.signal_names == ["i", "ii", "v1"]
    assert original.signal_names == LEADS
    np.testing.assert_allclose(got.signals, original.signals, atol=1e-3)


def test_ptb_diagnostic_lower_case_leads(cfg_smoke: Config) -> None:
    rec = ml.read_leads(PTBDB_RECORD, cfg_smoke.multilead.leads)
    assert rec.signal_names == ["i", "ii", "v1"] and rec.fs == 1000
    assert rec.signals.shape == (3, 10000)


def test_table_layout_and_lead_column_order(built) -> None:
    cfg, df = built
    cols = ml.META_COLUMNS + ml.lead_columns(LEADS, 187)
    assert list(df.columns) == cols
    assert cols[7:9] == ["I_x0", "I_x1"] and cols[7 + 187] == "II_x0" and cols[-1] == "V1_x186"
    assert set(df["source"]) == {"ptbxl", "ptbdb"}
    x = ml.lead_tensor(df, LEADS, 187)
    assert x.shape == (len(df), 3, 187) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(ml.lead_tensor(df, ["V1"], 187)[:, 0], x[:, 2])


# ---- shared R-peaks, per-lead normalisation ---------------------------------------------------


@pytest.mark.parametrize("record", [PTBXL_RECORD, PTBDB_RECORD])
def test_shared_r_peaks_and_per_lead_window_normalisation(cfg_smoke: Config, record) -> None:
    data = cfg_smoke.data
    rec = ml.read_leads(record, LEADS)
    cut = ml.record_lead_beats(rec, cfg_smoke)
    assert len(cut.peak) >= 5 and cut.beats.shape == (len(cut.peak), 3, 187)
    window = int(data.window_s * data.fs)
    lead_ii = wfdb_io.resample(rec.signals[1], rec.fs, data.fs)
    for b, (peak, span) in enumerate(zip(cut.peak, cut.span, strict=True)):
        start = (peak // window) * window
        for k in range(3):  # every lead cut at the same sample, normalised in its own window
            lead = wfdb_io.resample(rec.signals[k], rec.fs, data.fs)
            norm = bt.minmax_normalise(lead[start : start + window])
            np.testing.assert_allclose(
                cut.beats[b, k, :span], norm[peak - start : peak - start + span], atol=1e-6
            )
            assert not cut.beats[b, k, span:].any()
        lo, hi = max(peak - 2, 0), peak + 3  # the shared peak is lead II's R maximum
        assert lead_ii[peak] >= lead_ii[lo:hi].max() - 1e-9
    assert not np.allclose(cut.beats[:, 0], cut.beats[:, 1])


def test_table_rows_match_the_record_cut(built) -> None:
    cfg, df = built
    rows = df[df["record"] == "00008_hr"]
    cut = ml.record_lead_beats(ml.read_leads(PTBXL_RECORD, LEADS), cfg)
    np.testing.assert_array_equal(rows["sample"], cut.peak)
    np.testing.assert_allclose(rows["time_s"], cut.peak / cfg.data.fs)
    np.testing.assert_array_equal(ml.lead_tensor(rows, LEADS, 187), cut.beats)


# ---- validation -------------------------------------------------------------------------------


def test_built_table_validates(built) -> None:
    cfg, df = built
    report = validate_multilead(df, cfg, "ptb12.parquet")
    assert report.success and report.task == "ptb12" and report.n_rows == len(df)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.assign(II_x5=1.5), "signal values at most"),
        (lambda d: d.assign(V1_x0=np.nan), "no NaN signal values"),
        (lambda d: d.drop(columns=ml.lead_columns(["V1"], 187)), "missing columns"),
        (lambda d: d.assign(sample=-1), "R-peak sample at least 0"),
        (lambda d: d.assign(patient=None), "every row has a patient"),
        (lambda d: pd.concat([d, d.iloc[:1]], ignore_index=True), "no duplicated"),
    ],
)
def test_bad_tables_fail_with_named_checks(built, change, message) -> None:
    cfg, df = built
    with pytest.raises(ValidationFailed, match=message) as err:
        validate_multilead(change(df.copy()), cfg, "bad.parquet")
    assert "bad.parquet" in str(err.value)


def test_per_class_minimum_comes_from_params(built, cfg_smoke_factory) -> None:
    _, df = built
    strict = cfg_smoke_factory(multilead={"validation": {"min_per_class": 10_000}})
    with pytest.raises(ValidationFailed, match="min_per_class"):
        validate_multilead(df, strict, "ptb12.parquet")


def test_helper_column_names_are_refused(built) -> None:
    cfg, df = built
    with pytest.raises(DataError, match="_max"):
        validate_multilead(df.assign(_max=0.0), cfg, "odd.parquet")


# ---- splits on the single-lead patients -------------------------------------------------------


def test_patient_parts_and_folds_equal_the_single_lead_ones(built) -> None:
    cfg, df = built
    ptb = pd.read_parquet(table_path(cfg, "ptb"))
    ptb_parts = load_assignments(cfg, "ptb", n_rows=len(ptb))
    ml_parts = ms.load_multilead_assignments(cfg, n_rows=len(df))
    assert list(ml_parts.columns) == ["row", "beat", "patient", "patient_fold"]
    single = pd.DataFrame({"patient": ptb["patient"], "part": ptb_parts["patient"],
                           "fold": ptb_parts["patient_fold"]}).drop_duplicates()  # fmt: skip
    multi = pd.DataFrame({"patient": df["patient"], "part": ml_parts["patient"],
                          "fold": ml_parts["patient_fold"]}).drop_duplicates()  # fmt: skip
    assert multi["patient"].is_unique  # one part per patient
    both = multi.merge(single, on="patient", suffixes=("_ml", "_sl"))
    assert len(both) == len(multi)  # every fixture patient is in both tables
    assert (both["part_ml"] == both["part_sl"]).all()
    assert (both["fold_ml"] == both["fold_sl"]).all()


def test_every_grouped_fold_has_the_single_lead_patients_per_part(built) -> None:
    cfg, _ = built
    single = list(iter_patient_folds(cfg, "ptb"))
    multi = list(ms.iter_multilead_folds(cfg))
    assert len(multi) == len(single) == cfg.splits.cv_folds
    for sl, mlf in zip(single, multi, strict=True):
        for a, b in zip(sl, mlf, strict=True):
            assert set(a["patient"]) == set(b["patient"])


def test_patients_absent_from_the_single_lead_table_are_assigned_deterministically(
    built,
) -> None:
    cfg, df = built
    ptb = pd.read_parquet(table_path(cfg, "ptb"))
    parts = load_assignments(cfg, "ptb", n_rows=len(ptb))
    gone = sorted(set(ptb["patient"]))[:3]
    keep = ~ptb["patient"].isin(gone).to_numpy()
    runs = [
        ms.assign_multilead_splits(df, ptb[keep], parts[keep].reset_index(drop=True), cfg)
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    new = df["patient"].isin(gone).to_numpy()
    got = runs[0][new].assign(patient_id=df["patient"][new].to_numpy())
    per = got.groupby("patient_id")[["patient", "patient_fold"]].nunique()
    assert (per == 1).all().all()
    assert set(got["patient"]) <= {"train", "test"}
    assert ((got["patient"] == "test") == (got["patient_fold"] == 0)).all()
    full = ms.assign_multilead_splits(df, ptb, parts, cfg)
    pd.testing.assert_frame_equal(full[~new], runs[0][~new])


# ---- bad input: a record missing a lead -------------------------------------------------------


def test_a_record_missing_a_lead_names_the_record_and_the_lead(tmp_path: Path) -> None:
    record = write_copy(PTBXL_RECORD, tmp_path, ["I", "II"], rename=str)
    with pytest.raises(ml.MissingLeadsError, match="lacks lead\\(s\\) V1") as err:
        ml.read_leads(record, LEADS)
    assert str(record) in str(err.value) and err.value.missing == ["V1"]
    assert isinstance(err.value, DataError)


def test_twelve_leads_on_the_three_lead_fixture_name_all_nine_missing() -> None:
    with pytest.raises(ml.MissingLeadsError) as err:
        ml.read_leads(PTBDB_RECORD, TWELVE)
    assert err.value.missing == [lead for lead in TWELVE if lead not in LEADS]
    assert "aVR" in str(err.value) and "s0426_re" in str(err.value)


@pytest.fixture
def raw_missing_v1(tmp_path: Path) -> Path:
    """A raw folder of the fixtures where PTB-XL record 00008_hr lost its V1 lead."""
    raw = tmp_path / "raw"
    shutil.copytree(RAW / "ptbxl", raw / "ptbxl")
    shutil.copytree(RAW / "ptbdb-sample", raw / "ptbdb-sample")
    for ext in (".hea", ".dat"):
        (raw / "ptbxl" / "records500" / "00000" / f"00008_hr{ext}").unlink()
    write_copy(PTBXL_RECORD, raw / "ptbxl" / "records500" / "00000", ["I", "II"], rename=str)
    return raw


def test_missing_lead_fails_or_is_skipped_by_config(cfg_smoke_factory, raw_missing_v1) -> None:
    failing = cfg_smoke_factory(paths={"raw": str(raw_missing_v1)})
    with pytest.raises(ml.MissingLeadsError, match="00008_hr.*V1"):
        ml.collect_multilead(failing)
    skipping = cfg_smoke_factory(
        paths={"raw": str(raw_missing_v1)}, multilead={"on_missing_lead": "skip"}
    )
    df, summary = ml.collect_multilead(skipping)
    assert summary["skipped_missing_leads"] == {"ptbxl/00008_hr": ["V1"]}
    assert "00008_hr" not in set(df["record"]) and len(df)


# ---- command line -----------------------------------------------------------------------------


def test_cli_builds_and_splits_ptb12(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgops.data.cli import app

    root = Path(__file__).resolve().parents[2]
    shutil.copyfile(root / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("ECGOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("ECGOPS_DATA_SOURCE", str(RAW))
    monkeypatch.delenv("ECGOPS_PROFILE", raising=False)
    runner = CliRunner()
    for args in (["import-raw"], ["build", "--task", "ptb"], ["split", "--task", "ptb"],
                 ["build", "--task", "ptb12"], ["split", "--task", "ptb12"],
                 ["summary", "--task", "ptb12"]):  # fmt: skip
        result = runner.invoke(app, [*args, "--profile", "smoke"])
        assert result.exit_code == 0, (args, result.output, result.exception)
    assert "ptb12:" in result.output and "MI" in result.output
    assert (tmp_path / "data" / "splits" / "ptb12.parquet").is_file()
