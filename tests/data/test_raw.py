"""Copying the raw folders into the project with SHA256 verification."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecgops.config import Config
from ecgops.data import raw
from ecgops.errors import DataError

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "raw"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A writable copy of the raw fixtures (mitdb and ptbdb-sample only: fast)."""
    src = tmp_path / "source"
    for name in ("mitdb", "ptbdb-sample"):
        shutil.copytree(RAW / name, src / name)
    return src


def test_import_copies_and_verifies_every_present_folder(cfg_smoke: Config) -> None:
    target = raw.import_raw(cfg_smoke)
    assert target == cfg_smoke.path("raw")
    for name in ("mitdb", "ptbxl", "ptbdb-sample"):
        sums = raw.read_checksums(RAW / name / raw.CHECKSUMS)
        for rel, digest in sums.items():
            assert raw.sha256(target / name / rel) == digest
    assert (target / "mitdb" / "RECORDS").read_text() == (RAW / "mitdb" / "RECORDS").read_text()
    assert (target / "ptbxl" / "ptbxl_database.csv").is_file()


def test_second_import_copies_nothing(source: Path) -> None:
    dst = source.parent / "copy"
    sums = raw.verify_folder(source / "mitdb", require=True)
    first = raw.copy_folder(source / "mitdb", dst, sums)
    again = raw.copy_folder(source / "mitdb", dst, sums)
    assert first["copied"] == first["verified"] + 2  # + RECORDS and SHA256SUMS.txt
    assert again == {
        "copied": 0,
        "unchanged": first["copied"],
        "removed": 0,
        "verified": first["verified"],
    }


def test_the_copy_loses_what_the_source_no_longer_has(source: Path) -> None:
    """DVC keeps data/raw between runs (persist), so the import itself mirrors the source."""
    dst = source.parent / "copy"
    sums = raw.verify_folder(source / "mitdb", require=True)
    raw.copy_folder(source / "mitdb", dst, sums)
    (dst / "old" / "999.dat").parent.mkdir()
    (dst / "old" / "999.dat").write_bytes(b"gone from the source")
    result = raw.copy_folder(source / "mitdb", dst, sums)
    assert result["removed"] == 1 and result["copied"] == 0
    assert not (dst / "old" / "999.dat").exists()
    assert (dst / raw.CHECKSUMS).is_file() and (dst / "RECORDS").is_file()


def test_changed_copy_is_replaced(source: Path) -> None:
    dst = source.parent / "copy"
    sums = raw.verify_folder(source / "mitdb", require=True)
    raw.copy_folder(source / "mitdb", dst, sums)
    (dst / "208.dat").write_bytes(b"stale")
    assert raw.copy_folder(source / "mitdb", dst, sums)["copied"] == 1
    assert raw.sha256(dst / "208.dat") == sums["208.dat"]


def test_checksum_mismatch_names_the_file_and_copies_nothing(
    cfg_smoke_factory, source: Path
) -> None:
    dat = source / "ptbdb-sample" / "patient214" / "s0436_re.dat"
    data = bytearray(dat.read_bytes())
    data[100] ^= 0xFF
    dat.write_bytes(bytes(data))
    cfg = cfg_smoke_factory(paths={"raw_source": str(source)})
    with pytest.raises(DataError, match=r"s0436_re\.dat: SHA256 mismatch"):
        raw.import_raw(cfg)
    assert not cfg.path("raw").exists()  # mitdb (fine) was not copied either


def test_listed_file_missing_names_it(source: Path) -> None:
    (source / "mitdb" / "114.atr").unlink()
    with pytest.raises(DataError, match=r"114\.atr: listed in .*SHA256SUMS\.txt but missing"):
        raw.verify_folder(source / "mitdb", require=True)


def test_missing_checksum_list(source: Path) -> None:
    (source / "ptbdb-sample" / raw.CHECKSUMS).unlink()
    with pytest.raises(DataError, match=r"ptbdb-sample/SHA256SUMS\.txt: missing"):
        raw.verify_folder(source / "ptbdb-sample", require=True)
    assert raw.verify_folder(source / "ptbdb-sample", require=False) is None


def test_folder_without_list_gets_one_in_the_copy(source: Path) -> None:
    (source / "ptbdb-sample" / raw.CHECKSUMS).unlink()
    dst = source.parent / "copy"
    raw.copy_folder(source / "ptbdb-sample", dst, None)
    written = raw.read_checksums(dst / raw.CHECKSUMS)
    assert written["patient205/s0426_re.dat"] == raw.sha256(dst / "patient205/s0426_re.dat")
    assert raw.verify_folder(dst, require=True) == written


def test_malformed_checksum_line(tmp_path: Path) -> None:
    listing = tmp_path / raw.CHECKSUMS
    listing.write_text("abc  file.dat\n")
    with pytest.raises(DataError, match=r"SHA256SUMS\.txt: line 1 is not"):
        raw.read_checksums(listing)


def test_missing_source_and_empty_source(cfg_smoke_factory, tmp_path: Path) -> None:
    cfg = cfg_smoke_factory(paths={"raw_source": str(tmp_path / "nowhere")})
    with pytest.raises(DataError, match="raw data source not found"):
        raw.import_raw(cfg)
    (tmp_path / "empty").mkdir()
    cfg = cfg_smoke_factory(paths={"raw_source": str(tmp_path / "empty")})
    with pytest.raises(DataError, match="none of the raw folders"):
        raw.import_raw(cfg)
