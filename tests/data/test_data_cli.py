"""``ecgops data ...`` commands, run through Typer in a temporary project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgops.data.cli import app
from ecgops.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "tests" / "fixtures" / "raw"
COMMANDS = ["import-raw", "fetch", "build", "split", "import-kaggle", "export-kaggle", "summary"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary project root (the real params.yaml) reading the raw fixtures."""
    shutil.copyfile(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("ECGOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("ECGOPS_DATA_SOURCE", str(RAW))
    monkeypatch.delenv("ECGOPS_PROFILE", raising=False)
    return tmp_path


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_import_build_split_summary_export(project: Path) -> None:
    runner = CliRunner()
    steps = [
        ["import-raw", "--profile", "smoke"],
        ["build", "--task", "ptb", "--profile", "smoke"],
        ["split", "--task", "ptb", "--profile", "smoke"],
        ["summary", "--task", "ptb", "--profile", "smoke"],
        ["export-kaggle", str(project / "export"), "--profile", "smoke"],
    ]
    outputs = []
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        outputs.append(result.output)
    assert (project / "data" / "raw" / "mitdb" / "208.dat").is_file()
    assert (project / "data" / "processed" / "ptb.parquet").is_file()
    assert (project / "data" / "splits" / "ptb.parquet").is_file()
    assert "ptb:" in outputs[3] and "healthy" in outputs[3] and "MI" in outputs[3]
    assert "patient: gate" in outputs[2] and "test" in outputs[2] and "val" in outputs[2]
    assert sorted(p.name for p in (project / "export").iterdir()) == [
        "ptbdb_abnormal.csv",
        "ptbdb_normal.csv",
    ]


def test_errors_are_raised_for_the_main_app_to_report(project: Path) -> None:
    result = CliRunner().invoke(app, ["import-kaggle", str(project / "nope")])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError)
    assert str(result.exception) == f"{project / 'nope'}: not a directory"
