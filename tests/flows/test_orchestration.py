"""The orchestration policy shared by the flows: retry rules, cache keys, tables (no server)."""

from __future__ import annotations

import sqlite3
import urllib.error
from pathlib import Path

import pytest

from ecgops import orchestration as orc
from ecgops.errors import DataError, RegistryError, TrackingUnavailable, ValidationFailed


@pytest.mark.parametrize(
    "exc",
    [
        TrackingUnavailable("MLflow tracking server at http://127.0.0.1:1 is unreachable"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("read timed out"),
        urllib.error.URLError("no route"),
        sqlite3.OperationalError("database is locked"),
        RuntimeError("wrapped").with_traceback(None),
    ],
)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    if isinstance(exc, RuntimeError):  # transient cause under a generic wrapper
        exc.__cause__ = TrackingUnavailable("down")
    assert orc.is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        DataError("data/processed/ptb.parquet", "not a parquet file"),
        ValidationFailed("ptb.parquet", ["labels out of range"]),
        RegistryError("the registry lock could not be taken"),
        FileNotFoundError(2, "No such file", "data/splits/ptb.parquet"),
        ValueError("unknown model 'xgb'"),
        KeyError("x0"),
        type("TaskRunTimeoutError", (TimeoutError,), {})("too slow"),
    ],
)
def test_permanent_errors_fail_at_once(exc: BaseException) -> None:
    assert not orc.is_transient(exc)


def test_retry_condition_reads_the_failed_state() -> None:
    from prefect.states import Failed

    assert orc.retry_if_transient(None, None, Failed(data=TrackingUnavailable("down")))
    assert not orc.retry_if_transient(None, None, Failed(data=ValidationFailed("f", ["x"])))


def test_retry_options_per_kind() -> None:
    data = orc.retry_options("data")
    assert "retries" not in data and data["timeout_seconds"] == orc.TIMEOUT_S["data"]
    registry = orc.retry_options("registry")
    assert registry["retries"] == orc.RETRIES
    assert registry["retry_condition_fn"] is orc.retry_if_transient
    delays = registry["retry_delay_seconds"](3)
    assert delays == [orc.RETRY_BACKOFF_S * 2**i for i in range(3)]  # exponential back-off
    assert "timeout_seconds" not in orc.retry_options("train")


def test_cache_key_follows_inputs_params_and_file_content(cfg_smoke, tmp_path: Path) -> None:
    table = tmp_path / "ptb.parquet"
    table.write_bytes(b"beats v1")
    base = orc.cache_key("train", cfg_smoke, {"task": "ptb"}, ("classical",), [table])
    assert base == orc.cache_key("train", cfg_smoke, {"task": "ptb"}, ("classical",), [table])
    assert base != orc.cache_key("train", cfg_smoke, {"task": "mitbih"}, ("classical",), [table])
    assert base != orc.cache_key("train", cfg_smoke, {"task": "ptb"}, ("deep",), [table])
    other = cfg_smoke.model_copy(update={"seed": cfg_smoke.seed + 1})
    assert base != orc.cache_key("train", other, {"task": "ptb"}, ("classical",), [table])
    table.write_bytes(b"beats v2 (new data version)")
    assert base != orc.cache_key("train", cfg_smoke, {"task": "ptb"}, ("classical",), [table])


def test_file_fingerprint_of_missing_file_and_directory(tmp_path: Path) -> None:
    assert orc.file_fingerprint(tmp_path / "absent.parquet") == "missing"
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "100.dat").write_bytes(b"a")
    before = orc.file_fingerprint(folder)
    (folder / "101.dat").write_bytes(b"b")
    assert orc.file_fingerprint(folder) != before


def test_code_fingerprint_scoped_to_subpackages() -> None:
    assert orc.code_fingerprint(("data",)) != orc.code_fingerprint(("training",))
    assert orc.code_fingerprint(("data",)) == orc.code_fingerprint(("data",))


RECORD = {
    "task": "ptb",
    "scheme": "beat",
    "name": "lgbm-raw",
    "val": {"balanced_accuracy": 0.91},
    "test": {"accuracy": 0.9, "balanced_accuracy": 0.8771, "macro_f1": 0.85, "auroc": 0.95},
    "timing": {"fit_seconds": 3.21},
    "mlflow_run_id": "abc123",
}


def test_metrics_table_markdown_lists_runs_and_failures() -> None:
    failed = orc.Outcome("train-deep[ptb beat lstm]", error="RuntimeError: boom")
    summary = {"run_id": "def456", "method": "contrastive", "scheme": "beat"}
    text = orc.metrics_table_markdown([RECORD, summary], [failed], title="Models")
    lines = text.splitlines()
    assert lines[0] == "# Models"
    row = next(line for line in lines if "lgbm-raw" in line)
    assert "0.910" in row and "0.877" in row and "3.2" in row and "`abc123`" in row
    assert any("pretrain-contrastive" in line and "`def456`" in line for line in lines)
    assert "train-deep[ptb beat lstm]" in text and "boom" in text


def test_mlflow_run_ids_from_records_and_summaries() -> None:
    ids = orc.mlflow_run_ids([RECORD, {"run_id": "def456"}, RECORD, None])
    assert ids == ["abc123", "def456"]


def test_validation_markdown_names_file_failures_and_report() -> None:
    exc = ValidationFailed(
        "data/processed/ptb.parquet", ["labels out of range: 7 (row 3)"], "out/v.json"
    )
    text = orc.validation_markdown("ptb", exc)
    assert "FAILED" in text and "data/processed/ptb.parquet" in text
    assert "labels out of range: 7 (row 3)" in text and "out/v.json" in text


def test_sweep_overrides_isolate_each_trial(cfg_smoke) -> None:
    over = orc.sweep_overrides(cfg_smoke, "lgbm", "num_leaves", 15, "sweep-x")
    assert over["classical"] == {"lgbm": {"num_leaves": 15}}
    assert over["paths"]["outputs"].endswith("sweeps/sweep-x/num_leaves-15")
    assert over["tracking"]["experiment_prefix"].endswith("-sweep")
    with pytest.raises(ValueError, match="classical.lgbm.leaves"):
        orc.sweep_overrides(cfg_smoke, "lgbm", "leaves", 15, "sweep-x")


def test_sweep_summary_picks_best_validation_score() -> None:
    low = {**RECORD, "val": {"balanced_accuracy": 0.7}}
    outcomes = [
        orc.Outcome("a", value=low),
        orc.Outcome("b", value=RECORD),
        orc.Outcome("c", error="x"),
    ]
    summary = orc.sweep_summary("num_leaves", [7, 15, 31], outcomes, "balanced_accuracy")
    assert summary["best"]["value"] == 15
    assert summary["trials"][2]["error"] == "x"
    assert "| 15 | 0.910 | 0.877 | abc123 |" in orc.sweep_markdown(summary)


def test_registry_markdown_and_plain_views() -> None:
    text = orc.registry_markdown(
        {
            "ptb": {
                "challenger": {"name": "ecgops-ptb", "version": "3", "run_id": "abc"},
                "decision": {"action": "refused", "reason": "below floor | 0.5"},
            },
            "mitbih": {"challenger": None, "decision": None},
        }
    )
    assert "| ptb | ecgops-ptb | 3 | abc | action=refused; below floor / 0.5 |" in text
    assert "(none registered)" in text and "gate not run" in text
    assert orc.artifact_key("Validation", "PTB_beat") == "validation-ptb-beat"
    assert orc.as_plain({"p": Path("/x"), "t": (1, 2)}) == {"p": "/x", "t": [1, 2]}
