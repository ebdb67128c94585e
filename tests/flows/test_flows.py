"""The flows against a real Prefect server: clean failure on bad data, caching, the Dask sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def bad_kaggle_dir(folder: Path) -> Path:
    """Kaggle PTB CSVs whose abnormal file repeats five beats (duplicates fail validation)."""
    from ecgops.data.kaggle import write_kaggle_csv

    beats = pd.read_parquet(FIXTURES / "beats_ptb.parquet")
    mi = beats[beats["label"] == 1]
    write_kaggle_csv(beats[beats["label"] == 0], folder / "ptbdb_normal.csv")
    write_kaggle_csv(pd.concat([mi, mi.head(5)]), folder / "ptbdb_abnormal.csv")
    return folder


def test_invalid_dataset_fails_cleanly_and_registers_nothing(
    in_server, smoke_project, tmp_path: Path, read_artifacts, read_flow_runs
) -> None:
    from mlflow import MlflowClient

    from flows.pipeline import pipeline

    good = smoke_project.root / "data" / "processed" / "ptb.parquet"
    good.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "beats_ptb.parquet", good)  # an earlier good table
    before = good.read_bytes()
    bad = bad_kaggle_dir(tmp_path / "kaggle")

    state = pipeline(
        profile="smoke", tasks=["ptb"], kaggle_dir=str(bad), transfer=False, return_state=True
    )

    assert state.is_failed()
    assert "validation failed" in state.message and str(bad) in state.message
    assert "same 187 values" in state.message  # the failed expectation, with example rows
    assert good.read_bytes() == before  # nothing overwritten
    report = read_artifacts("validation-kaggle")[0]
    assert "FAILED" in report.data and "same 187 values" in report.data
    ingest_run = read_flow_runs([report.flow_run_id])[0]
    assert ingest_run.state.is_failed()
    assert ingest_run.parent_task_run_id is not None  # the pipeline's ingest subflow
    # no training ran, nothing was registered
    client = MlflowClient(
        tracking_uri=smoke_project.tracking_uri, registry_uri=smoke_project.tracking_uri
    )
    assert client.search_registered_models() == []
    assert not (smoke_project.root / "outputs" / "metrics").exists()


def test_rerun_skips_finished_work_and_rebuilds_missing_outputs(
    in_server, ingested_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import ingest

    for key, value in ingested_project.env.items():
        monkeypatch.setenv(key, value)
    splits = ingested_project.root / "data" / "splits" / "ptb.parquet"
    stamp = splits.stat().st_mtime_ns

    state = ingest(profile="smoke", tasks=["ptb"], return_state=True)
    assert state.is_completed()
    assert splits.stat().st_mtime_ns == stamp  # cached: not rewritten

    features = ingested_project.root / "data" / "features" / "ptb.parquet"
    features.unlink()  # an output deleted by hand is rebuilt, the rest stays cached
    ingest(profile="smoke", tasks=["ptb"])
    assert features.exists()
    assert splits.stat().st_mtime_ns == stamp


def test_dask_sweep_runs_trials_on_a_local_cluster(
    in_server, ingested_project, monkeypatch: pytest.MonkeyPatch, read_artifacts
) -> None:
    from mlflow import MlflowClient

    from flows.sweep import sweep

    for key, value in ingested_project.env.items():
        monkeypatch.setenv(key, value)

    result = sweep(profile="smoke", task="ptb", scheme="beat", values=[4, 8], n_workers=2)

    assert [t["value"] for t in result["trials"]] == [4, 8]
    assert all(t["error"] is None for t in result["trials"])
    assert result["best"]["value"] in (4, 8)
    client = MlflowClient(
        tracking_uri=ingested_project.tracking_uri, registry_uri=ingested_project.tracking_uri
    )
    exp = client.get_experiment_by_name("ecgops-sweep-ptb")  # apart from the pipeline's runs
    runs = client.search_runs([exp.experiment_id])
    assert sorted(int(r.data.params["lgbm.num_leaves"]) for r in runs) == [4, 8]
    hosts = {r.data.tags.get("prefect_flow_run_id") for r in runs}
    assert len(hosts) == 1 and None not in hosts  # both linked to the sweep's flow run
    sweep_dir = ingested_project.root / "outputs" / "sweeps" / "sweep-ptb-beat-lgbm-raw-num-leaves"
    for value in (4, 8):  # each trial writes its own metrics, never the pipeline's
        trial = sweep_dir / f"num_leaves-{value}" / "metrics" / "ptb" / "beat" / "lgbm-raw.json"
        assert trial.exists()
    assert not (ingested_project.root / "outputs" / "metrics").exists()
    assert "Best" in read_artifacts("sweep-ptb-beat-lgbm-raw-num-leaves")[0].data


def test_unreachable_mlflow_is_retried_with_back_off_then_fails_clearly(
    in_server, smoke_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from prefect import flow, get_client

    from ecgops.config import load_config
    from flows import prepare_tracking

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    cfg = load_config(profile="smoke")
    fast = prepare_tracking.with_options(retry_delay_seconds=[0.1, 0.2, 0.4])  # same policy

    @flow
    def probe() -> dict:
        state = fast(cfg, ["ptb"], return_state=True)
        return {
            "failed": state.is_failed(),
            "message": state.message,
            "task_run_id": str(state.state_details.task_run_id),
        }

    outcome = probe()
    assert outcome["failed"]
    assert "unreachable" in outcome["message"] and f"127.0.0.1:{port}" in outcome["message"]
    with get_client(sync_client=True) as client:
        run = client.read_task_run(outcome["task_run_id"])
    assert run.run_count == 1 + fast.retries  # retried, then failed for good


def test_task_runs_are_timed_and_cache_hits_marked(in_server, smoke_project) -> None:
    from prefect import flow, task
    from prefect.cache_policies import INPUTS

    from ecgops.config import load_config
    from ecgops.orchestration import timing
    from ecgops.orchestration.concurrency import call, run_concurrently

    def spin(cfg, n: int) -> dict:
        """Burn some CPU (a real computation, no sleep)."""
        return {"total": sum(i * i for i in range(n)), "mlflow_run_id": f"run-{n}"}

    spinner = task(name="spin", cache_policy=INPUTS, persist_result=True)(timing.timed(spin))
    cfg = load_config(profile="smoke")

    seen: list[int] = []  # the table's length each time it is written (after every call)

    @flow
    def probe() -> list[dict]:
        timing.reset(on_note=lambda: seen.append(len(timing.records())))
        call(spinner, cfg, n=300_000)
        call(spinner, cfg, n=300_000)  # same inputs: served from the cache
        run_concurrently([(spinner, {"cfg": cfg, "n": 200_000})], cfg, max_workers=1)
        return timing.records()

    first, again, threaded = probe()
    assert seen == [1, 2, 3]  # a run cut off after any call still leaves that call's times
    assert (first["stage"], first["cached"], first["ok"]) == ("spin", False, True)
    assert first["wall_s"] > 0 and first["cpu_s"] > 0 and first["mlflow_run_id"] == "run-300000"
    assert again["cached"] and again["wall_s"] == 0.0 and again["start_s"] is None
    assert not threaded["cached"] and threaded["wall_s"] > 0
    # start_s counts from the reset: each call begins after the one before it ended
    assert 0 <= first["start_s"] < first["start_s"] + first["wall_s"] <= threaded["start_s"]
