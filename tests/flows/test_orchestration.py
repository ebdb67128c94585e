"""The orchestration policy shared by the flows: retry rules, cache keys, tables (no server)."""

from __future__ import annotations

import sqlite3
import urllib.error
from pathlib import Path

import pytest

from ecgops.errors import DataError, RegistryError, TrackingUnavailable, ValidationFailed
from ecgops.orchestration import artifacts as art
from ecgops.orchestration import caching, retries, sweeps
from ecgops.orchestration.concurrency import Outcome
from ecgops.versions import MISSING, file_md5


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
    assert retries.is_transient(exc)


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
    assert not retries.is_transient(exc)


def test_retry_condition_reads_the_failed_state() -> None:
    from prefect.states import Failed

    assert retries.retry_if_transient(None, None, Failed(data=TrackingUnavailable("down")))
    assert not retries.retry_if_transient(None, None, Failed(data=ValidationFailed("f", ["x"])))


def test_retry_options_per_kind() -> None:
    data = retries.retry_options("data")
    assert "retries" not in data and data["timeout_seconds"] == retries.TIMEOUT_S["data"]
    registry = retries.retry_options("registry")
    assert registry["retries"] == retries.RETRIES
    assert registry["retry_condition_fn"] is retries.retry_if_transient
    delays = registry["retry_delay_seconds"](3)
    assert delays == [retries.RETRY_BACKOFF_S * 2**i for i in range(3)]  # exponential back-off
    assert "timeout_seconds" not in retries.retry_options("train")


def test_cache_key_follows_inputs_params_and_file_content(cfg_smoke, tmp_path: Path) -> None:
    table = tmp_path / "ptb.parquet"
    table.write_bytes(b"beats v1")
    base = caching.cache_key("train", cfg_smoke, {"task": "ptb"}, ("classical",), [table])
    assert base == caching.cache_key("train", cfg_smoke, {"task": "ptb"}, ("classical",), [table])
    assert base != caching.cache_key(
        "train", cfg_smoke, {"task": "mitbih"}, ("classical",), [table]
    )
    assert base != caching.cache_key("train", cfg_smoke, {"task": "ptb"}, ("deep",), [table])
    other = cfg_smoke.model_copy(update={"seed": cfg_smoke.seed + 1})
    assert base != caching.cache_key("train", other, {"task": "ptb"}, ("classical",), [table])
    table.write_bytes(b"beats v2 (new data version)")
    assert base != caching.cache_key("train", cfg_smoke, {"task": "ptb"}, ("classical",), [table])


def test_file_fingerprint_of_missing_file_and_directory(tmp_path: Path) -> None:
    assert file_md5(tmp_path / "absent.parquet") == MISSING
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "100.dat").write_bytes(b"a")
    before = file_md5(folder)
    (folder / "101.dat").write_bytes(b"b")
    assert file_md5(folder) != before


def test_code_fingerprint_scoped_to_source_paths() -> None:
    assert caching.code_fingerprint(("ecgops/data",)) != caching.code_fingerprint(
        ("ecgops/training",)
    )
    assert caching.code_fingerprint(("ecgops/data",)) == caching.code_fingerprint(("ecgops/data",))


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
    failed = Outcome("train-deep[ptb beat lstm]", error="RuntimeError: boom")
    summary = {"run_id": "def456", "method": "contrastive", "scheme": "beat"}
    text = art.metrics_table_markdown([RECORD, summary], [failed], title="Models")
    lines = text.splitlines()
    assert lines[0] == "# Models"
    row = next(line for line in lines if "lgbm-raw" in line)
    assert "0.910" in row and "0.877" in row and "3.2" in row and "`abc123`" in row
    assert any("pretrain-contrastive" in line and "`def456`" in line for line in lines)
    assert "train-deep[ptb beat lstm]" in text and "boom" in text


def test_mlflow_run_ids_from_records_and_summaries() -> None:
    ids = art.mlflow_run_ids([RECORD, {"run_id": "def456"}, RECORD, None])
    assert ids == ["abc123", "def456"]


def test_validation_markdown_names_file_failures_and_report() -> None:
    exc = ValidationFailed(
        "data/processed/ptb.parquet", ["labels out of range: 7 (row 3)"], "out/v.json"
    )
    text = art.validation_markdown("ptb", exc)
    assert "FAILED" in text and "data/processed/ptb.parquet" in text
    assert "labels out of range: 7 (row 3)" in text and "out/v.json" in text


def test_sweep_overrides_isolate_each_trial(cfg_smoke) -> None:
    over = sweeps.sweep_overrides(cfg_smoke, "lgbm", "num_leaves", 15, "sweep-x")
    assert over["classical"] == {"lgbm": {"num_leaves": 15}}
    assert over["paths"]["outputs"].endswith("sweeps/sweep-x/num_leaves-15")
    assert over["tracking"]["experiment_prefix"].endswith("-sweep")
    with pytest.raises(ValueError, match="classical.lgbm.leaves"):
        sweeps.sweep_overrides(cfg_smoke, "lgbm", "leaves", 15, "sweep-x")


def test_sweep_summary_picks_best_validation_score() -> None:
    low = {**RECORD, "val": {"balanced_accuracy": 0.7}}
    outcomes = [
        Outcome("a", value=low),
        Outcome("b", value=RECORD),
        Outcome("c", error="x"),
    ]
    summary = sweeps.sweep_summary("num_leaves", [7, 15, 31], outcomes, "balanced_accuracy")
    assert summary["best"]["value"] == 15
    assert summary["trials"][2]["error"] == "x"
    assert "| 15 | 0.910 | 0.877 | abc123 |" in sweeps.sweep_markdown(summary)


def test_registry_markdown_and_plain_views() -> None:
    text = art.registry_markdown(
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
    assert art.artifact_key("Validation", "PTB_beat") == "validation-ptb-beat"
    assert art.as_plain({"p": Path("/x"), "t": (1, 2)}) == {"p": "/x", "t": [1, 2]}


def test_sweep_grids_come_from_params(cfg_smoke) -> None:
    assert sweeps.sweep_values(cfg_smoke, "lgbm", "num_leaves") == [7, 15, 31]
    assert sweeps.sweep_values(cfg_smoke, "lgbm", "max_depth") == []


def test_stage_policy_follows_the_stage_table(cfg_smoke) -> None:
    from ecgops import paths
    from ecgops.stages import stage

    policy = caching.InputsAndFiles.for_stage("train-deep")
    entry = stage("deep-ptb")
    assert policy.sections == entry.sections and policy.code == entry.code()
    assert "ecgops/training/engine.py" in policy.code
    inputs = {"cfg": cfg_smoke, "task": "ptb", "scheme": "beat", "model": "cnn"}
    reads = policy.reads(cfg_smoke, inputs)
    assert reads == [paths.beat_table(cfg_smoke, "ptb"), paths.split_table(cfg_smoke, "ptb")]
    assert policy.writes(cfg_smoke, inputs) == [
        cfg_smoke.path("outputs") / "metrics" / "ptb" / "beat" / "cnn.json"
    ]


def test_timings_table_and_report_section(cfg_smoke) -> None:
    from ecgops.evaluation.report import timings_section
    from ecgops.io import write_json
    from ecgops.orchestration import timing
    from ecgops.paths import timings_file

    assert timings_section(cfg_smoke) is None  # no pipeline run yet
    rows = [
        {
            "stage": "train-deep",
            "call": "train-deep[ptb beat cnn]",
            "wall_s": 12.5,
            "cpu_s": 20.0,
            "start_s": 3.0,
        },
        {"stage": "train-deep", "call": "train-deep[ptb beat lstm]", "wall_s": 7.5, "cpu_s": 9.0},
        {"stage": "build", "call": "build[ptb]", "wall_s": 0.0, "cpu_s": 0.0, "cached": True},
    ]
    text = timing.timings_markdown(rows)
    assert "| train-deep | train-deep[ptb beat cnn] | 3.0 | 12.5 | 20.0 | no |" in text
    assert "| build | build[ptb] |  | 0.0 | 0.0 | yes |" in text  # cached: never started
    write_json({"profile": "smoke", "runs": rows}, timings_file(cfg_smoke))
    section = timings_section(cfg_smoke)
    assert section.title == "Where the time goes"
    lines = section.markdown.splitlines()
    assert "| train-deep | 2 | 0 | 20.0 | 29.0 |" in lines
    assert lines.index("| train-deep | 2 | 0 | 20.0 | 29.0 |") < lines.index(
        "| build | 1 | 1 | 0.0 | 0.0 |"
    )  # the most expensive stage first
    timings_file(cfg_smoke).write_text("not json")
    with pytest.raises(DataError, match="pipeline.json"):
        timings_section(cfg_smoke)


def test_the_pipeline_flow_loads_by_its_entrypoint() -> None:
    from ecgops.orchestration import runner

    flow = runner.load_flow(runner.PIPELINE_ENTRYPOINT)
    assert flow.name == "pipeline" and "max_workers" in flow.parameters.properties
    with pytest.raises(FileNotFoundError, match="no flow file"):
        runner.load_flow("flows/absent.py:pipeline")
