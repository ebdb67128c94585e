"""Reading one lead of a WFDB record: lead choice, resampling, and clear errors on bad files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgops.data import wfdb_io
from ecgops.errors import DataError

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"
MITDB = RAW / "mitdb"
PTBXL_RECORD = RAW / "ptbxl" / "records500" / "00000" / "00001_hr"
PTBDB_RECORD = RAW / "ptbdb-sample" / "patient205" / "s0426_re"


def copy_record(src: Path, dst_dir: Path, suffixes=(".hea", ".dat", ".atr")) -> Path:
    """Copy a record's files to ``dst_dir``; return the new record path."""
    for suffix in suffixes:
        f = src.with_name(src.name + suffix)
        if f.exists():
            shutil.copyfile(f, dst_dir / f.name)
    return dst_dir / src.name


def test_mlii_is_picked_by_name_on_channel_1_of_record_114() -> None:
    lead = wfdb_io.read_lead(MITDB / "114", "MLII", fallback_channel=0)
    assert (lead.name, lead.channel, lead.fs) == ("MLII", 1, 360.0)
    assert len(lead.signal) == 90 * 360


def test_missing_mlii_falls_back_to_channel_0_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ecgops.data.wfdb_io"):
        lead = wfdb_io.read_lead(MITDB / "104", "MLII", fallback_channel=0)
    assert (lead.name, lead.channel) == ("V5", 0)
    assert "no lead MLII" in caplog.text and "104.hea" in caplog.text


def test_lead_names_match_case_insensitively() -> None:
    xl = wfdb_io.read_lead(PTBXL_RECORD, "ii")
    db = wfdb_io.read_lead(PTBDB_RECORD, "II")
    assert (xl.name, xl.fs) == ("II", 500.0)
    assert (db.name, db.fs) == ("ii", 1000.0)
    assert "Reason for admission: Myocardial infarction" in db.comments


def test_unknown_lead_names_the_header() -> None:
    with pytest.raises(DataError, match=r"00001_hr\.hea: no lead 'V6'.*signals: I, II, V1"):
        wfdb_io.read_lead(PTBXL_RECORD, "V6")


@pytest.mark.parametrize(("fs_in", "n_in", "n_out"), [(360, 3600, 1250), (500, 5000, 1250)])
def test_resample_to_125_hz_keeps_duration_and_frequency(fs_in: int, n_in: int, n_out: int):
    t = np.arange(n_in) / fs_in
    out = wfdb_io.resample(np.sin(2 * np.pi * 1.5 * t), fs_in, 125)
    assert len(out) == n_out
    t_out = np.arange(n_out) / 125
    middle = slice(100, -100)  # filter edges aside
    assert np.allclose(out[middle], np.sin(2 * np.pi * 1.5 * t_out)[middle], atol=0.02)


def test_resample_is_identity_at_the_same_rate() -> None:
    x = np.arange(10.0)
    assert np.array_equal(wfdb_io.resample(x, 125, 125), x)


def test_annotations_map_to_125_hz() -> None:
    ann = wfdb_io.read_annotations(MITDB / "208", "atr")
    assert ann.fs == 360.0 and "F" in set(ann.symbol)
    mapped = wfdb_io.to_rate(ann.sample, 360, 125)
    assert np.array_equal(mapped, np.rint(ann.sample * 125 / 360).astype(np.int64))


def test_missing_header(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing\.hea: WFDB header not found"):
        wfdb_io.read_lead(tmp_path / "nothing", "MLII")


def test_missing_dat(tmp_path: Path) -> None:
    rec = copy_record(MITDB / "208", tmp_path, (".hea",))
    with pytest.raises(DataError, match=r"208\.dat: WFDB signal file not found"):
        wfdb_io.read_lead(rec, "MLII")


def test_empty_dat(tmp_path: Path) -> None:
    rec = copy_record(MITDB / "208", tmp_path)
    (tmp_path / "208.dat").write_bytes(b"")
    with pytest.raises(DataError, match=r"208\.dat: WFDB signal file is empty"):
        wfdb_io.read_lead(rec, "MLII")


def test_empty_header(tmp_path: Path) -> None:
    rec = copy_record(MITDB / "208", tmp_path)
    (tmp_path / "208.hea").write_text("")
    with pytest.raises(DataError, match=r"208\.hea: WFDB header is empty"):
        wfdb_io.read_lead(rec, "MLII")


def test_garbled_header(tmp_path: Path) -> None:
    rec = copy_record(MITDB / "208", tmp_path)
    (tmp_path / "208.hea").write_text("this is not a header\n")
    with pytest.raises(DataError, match=r"208\.hea: not a readable WFDB header"):
        wfdb_io.read_lead(rec, "MLII")


@pytest.mark.parametrize(
    ("record", "lead"), [(MITDB / "208", "MLII"), (PTBXL_RECORD, "II"), (PTBDB_RECORD, "ii")]
)
def test_truncated_dat_names_the_file(tmp_path: Path, record: Path, lead: str) -> None:
    rec = copy_record(record, tmp_path)
    dat = tmp_path / f"{record.name}.dat"
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 3 + 1])
    with pytest.raises(DataError, match=rf"{record.name}\.dat: (truncated|unreadable or trunc)"):
        wfdb_io.read_lead(rec, lead)


def test_missing_annotations(tmp_path: Path) -> None:
    rec = copy_record(MITDB / "208", tmp_path, (".hea", ".dat"))
    with pytest.raises(DataError, match=r"208\.atr: annotation file not found"):
        wfdb_io.read_annotations(rec, "atr")


def test_garbled_annotations(tmp_path: Path) -> None:
    rec = copy_record(MITDB / "208", tmp_path)
    (tmp_path / "208.atr").write_bytes(b"\xff" * 7)
    with pytest.raises(DataError, match=r"208\.atr: unreadable annotation file"):
        wfdb_io.read_annotations(rec, "atr")
