"""Bad input at every entry point, through the real ``ecgops`` command (issue #10, bad input).

Each case puts an earlier good output in place (beat table, summary, validation report,
predictions), damages the input, runs the command as the console script does
(:func:`ecgops.cli.main`) and checks: exit status 1, one ``error:`` line naming the file and
the problem, no traceback, every earlier output byte-identical, no temporary file left and
nothing tracked or registered (no MLflow store created). The messages of each kind of bad
input are tested per module in ``tests/data``, ``tests/test_predict.py`` and
``tests/registry/test_pyfunc.py``; ``test_bad_input.py`` checks the subprocess exit status.

Also here: duplicated rows and empty beats in Kaggle CSVs (caught by the validation that
``import-kaggle`` runs before writing anything), and damaged records at record-level prediction.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config, load_config
from ecgops.errors import DataError, ValidationFailed
from ecgops.schema import signals

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
RAW = FIXTURES / "raw"
KAGGLE = FIXTURES / "kaggle"
PTBXL = RAW / "ptbxl" / "records500" / "00000" / "00001_hr"


@dataclass
class Case:
    """A damaged input: the command, the file its error must name, and the outputs to keep."""

    args: list[str]
    names: Path
    problem: str
    keep: list[Path] = field(default_factory=list)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A throwaway project (the real params.yaml, smoke profile) selected by the environment."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(ROOT / "params.yaml", root / "params.yaml")
    monkeypatch.setenv("ECGOPS_ROOT", str(root))
    monkeypatch.setenv("ECGOPS_PROFILE", "smoke")
    monkeypatch.setenv("ECGOPS_DATA_SOURCE", str(RAW))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the CLI callback setdefault()s this one: keep it from leaking into later tests
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    return load_config()


@pytest.fixture
def _log_levels():
    """The CLI sets chatty libraries' loggers to WARNING: put them back afterwards."""
    loggers = [logging.getLogger(n) for n in ("great_expectations", "mlflow", "alembic", "urllib3")]
    levels = [lg.level for lg in loggers]
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


def _good_table(cfg: Config) -> Path:
    """An earlier good PTB beat table (and summary) in the project."""
    table = cfg.path("processed") / "ptb.parquet"
    table.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / "beats_ptb.parquet", table)
    table.with_suffix(".summary.json").write_text('{"beats": 110}\n')
    return table


def _copy_record(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".hea", ".dat"):
        shutil.copyfile(src.with_name(src.name + suffix), folder / (src.name + suffix))
    return folder / src.name


def _build_truncated_dat(cfg: Config, tmp: Path) -> Case:
    from ecgops.data.build import build_task
    from ecgops.data.raw import import_raw

    import_raw(cfg)
    table = build_task(cfg, "ptb")  # the earlier good build, validated
    dat = sorted((cfg.path("raw") / "ptbxl").rglob("*.dat"))[0]
    dat.write_bytes(dat.read_bytes()[:1000])
    return Case(
        ["data", "build", "--task", "ptb"],
        dat,
        "truncated",
        [table, table.with_suffix(".summary.json")],
    )


def _kaggle_header_row(cfg: Config, tmp: Path) -> Case:
    table = _good_table(cfg)
    folder = tmp / "kaggle"
    folder.mkdir()
    for name in ("ptbdb_normal.csv", "ptbdb_abnormal.csv"):
        shutil.copyfile(KAGGLE / name, folder / name)
    bad = folder / "ptbdb_abnormal.csv"
    bad.write_text(",".join(f"x{i}" for i in range(188)) + "\n" + bad.read_text())
    return Case(
        ["data", "import-kaggle", str(folder)],
        bad,
        "line 1 is a header row",
        [table, table.with_suffix(".summary.json")],
    )


def _earlier_report(cfg: Config) -> Path:
    report = cfg.path("outputs") / "validation" / "ptb" / "validation.json"
    report.parent.mkdir(parents=True)
    report.write_text('{"success": true}\n')
    return report


def _validate_truncated_table(cfg: Config, tmp: Path) -> Case:
    table = _good_table(cfg)
    report = _earlier_report(cfg)
    table.write_bytes(table.read_bytes()[:5000])
    return Case(
        ["validate", "--task", "ptb"], table, "not a readable parquet file", [table, report]
    )


def _validate_nan_cell(cfg: Config, tmp: Path) -> Case:
    table = _good_table(cfg)
    df = pd.read_parquet(table)
    df.loc[3, "x40"] = np.nan
    df.to_parquet(table, index=False)
    return Case(["validate", "--task", "ptb"], table, "x40 = nan", [table])


def _earlier_predictions(tmp: Path) -> Path:
    out = tmp / "predictions.csv"
    out.write_text("pred,pred_name,p_0,p_1\n0,healthy,0.9,0.1\n")
    return out


def _predict_non_numeric_cell(cfg: Config, tmp: Path) -> Case:
    beats = signals(pd.read_parquet(FIXTURES / "beats_ptb.parquet"))[:5]
    rows = [",".join(f"{v:.6g}" for v in row) for row in beats]
    cells = rows[2].split(",")
    cells[6] = "0.5.1"
    rows[2] = ",".join(cells)
    src = tmp / "beats.csv"
    src.write_text("\n".join(rows) + "\n")
    out = _earlier_predictions(tmp)
    return Case(
        ["predict", "--task", "ptb", "--input", str(src), "--output", str(out)],
        src,
        "line 3, column 7: non-numeric value '0.5.1'",
        [out],
    )


def _predict_empty_record(cfg: Config, tmp: Path) -> Case:
    record = _copy_record(PTBXL, tmp / "records")
    dat = record.with_name(record.name + ".dat")
    dat.write_bytes(b"")
    out = _earlier_predictions(tmp)
    return Case(
        ["predict", "--task", "ptb", "--record", str(record), "--output", str(out)],
        dat,
        "WFDB signal file is empty",
        [out],
    )


CASES: dict[str, Callable[[Config, Path], Case]] = {
    "build: truncated .dat": _build_truncated_dat,
    "import-kaggle: header row": _kaggle_header_row,
    "validate: truncated parquet": _validate_truncated_table,
    "validate: NaN value": _validate_nan_cell,
    "predict --input: non-numeric cell": _predict_non_numeric_cell,
    "predict --record: empty .dat": _predict_empty_record,
}


@pytest.mark.usefixtures("_log_levels")
@pytest.mark.parametrize("name", list(CASES))
def test_command_exits_1_with_one_line_naming_the_file_and_keeps_earlier_outputs(
    name: str,
    project: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ecgops.cli import main

    case = CASES[name](project, tmp_path)
    kept = {p: p.read_bytes() for p in case.keep}
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["ecgops", *case.args])

    with pytest.raises(SystemExit) as exited:
        main()

    err = capsys.readouterr().err
    assert exited.value.code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert case.names.name in errors[0] and case.problem in errors[0], errors[0]
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in case.keep} == kept
    leftovers = [p for p in project.root.rglob(".*") if p.name != ".dvc"]
    leftovers += [p for p in tmp_path.glob(".*")]
    assert not leftovers, leftovers  # no temporary files of a half-written output
    assert not (project.root / "mlflow.db").exists()  # nothing tracked, nothing registered


# ---- duplicated rows and empty beats in Kaggle CSVs --------------------------------------------


def _dup_within_file(folder: Path) -> str:
    path = folder / "ptbdb_abnormal.csv"
    rows = path.read_text().splitlines()
    path.write_text("\n".join([*rows, rows[1]]) + "\n")  # line 5 repeats line 2
    return "kaggle-ptbdb_abnormal-"


def _dup_across_files(folder: Path) -> str:
    test_row = (folder / "mitbih_test.csv").read_text().splitlines()[0]
    train = folder / "mitbih_train.csv"
    train.write_text(train.read_text() + test_row + "\n")  # a test beat leaks into train
    return "kaggle-mitbih_t"


def _all_zero_beat(folder: Path) -> str:
    path = folder / "ptbdb_normal.csv"
    rows = path.read_text().splitlines()
    rows[2] = ",".join(["0.0"] * 187 + ["0"])  # a row with no beat in it
    path.write_text("\n".join(rows) + "\n")
    return "kaggle-ptbdb_normal-2"


KAGGLE_CASES = {
    "duplicated row in one file": (_dup_within_file, "same 187 values"),
    "test beat repeated in train": (_dup_across_files, "same 187 values"),
    "all-zero row (no beat)": (_all_zero_beat, "0 samples before the padding"),
}


@pytest.mark.parametrize("name", list(KAGGLE_CASES))
def test_kaggle_duplicates_and_empty_beats_are_refused_and_keep_both_tables(
    name: str, cfg_smoke_factory, tmp_path: Path
) -> None:
    from ecgops.data.build import summary_path, table_path
    from ecgops.data.kaggle import import_kaggle

    cfg = cfg_smoke_factory(
        validation={"min_rows": {"mitbih": 5, "ptb": 5}, "min_per_class": {"mitbih": 1, "ptb": 1}}
    )
    folder = tmp_path / "kaggle"
    shutil.copytree(KAGGLE, folder)
    import_kaggle(cfg, folder)  # the earlier good import
    outputs = [f(cfg, t) for t in ("ptb", "mitbih") for f in (table_path, summary_path)]
    before = {p: p.read_bytes() for p in outputs}
    damage, problem = KAGGLE_CASES[name]
    record = damage(folder)

    with pytest.raises(ValidationFailed) as err:
        import_kaggle(cfg, folder)

    message = str(err.value)
    assert message.startswith(f"{folder}: validation failed"), message
    assert problem in message and f"record {record}" in message, message
    assert {p: p.read_bytes() for p in outputs} == before
    assert not [p for p in cfg.path("processed").iterdir() if p.name.startswith(".")]


# ---- record-level prediction on damaged records ------------------------------------------------


def _truncate(dat: Path) -> str:
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 3 + 1])
    return r"(truncated|unreadable)"


def _garble_header(dat: Path) -> str:
    dat.with_suffix(".hea").write_text("not a header\n")
    return "not a readable WFDB header"


def _remove_dat(dat: Path) -> str:
    dat.unlink()
    return "WFDB signal file not found"


@pytest.mark.parametrize("damage", [_truncate, _garble_header, _remove_dat])
def test_damaged_record_at_prediction_names_the_file_and_writes_nothing(
    cfg_smoke: Config, tmp_path: Path, damage: Callable[[Path], str]
) -> None:
    """The records are read before the model is loaded: no registry or server is needed to
    refuse them, and the earlier output stays."""
    from ecgops.predict import predict_records

    good = _copy_record(PTBXL, tmp_path / "good")
    bad = _copy_record(PTBXL, tmp_path / "bad")
    dat = bad.with_name(bad.name + ".dat")
    problem = damage(dat)
    out = _earlier_predictions(tmp_path)
    before = out.read_bytes()

    with pytest.raises(DataError) as err:
        predict_records(cfg_smoke, "ptb", [good, bad], out, model_uri="models:/ecgops-ptb/1")

    message = str(err.value)
    assert str(tmp_path / "bad") in message, message
    assert re.search(problem, message), message
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
