"""prefect.yaml for real: deploy to a local server, run the pipeline with a process worker.

The flow run happens as in production: `prefect deploy --all` from the project, a `process`
work pool, `prefect deployment run` with smoke parameters, and `prefect worker start` executing
it in a subprocess. The worker's environment selects a throwaway smoke project and a SQLite
MLflow store, which the test then inspects.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
CLI_TIMEOUT_S = 180
RUN_TIMEOUT_S = 600
SMOKE_RUN = {  # one task, one split, one model per track: the whole path in about a minute
    "profile": "smoke",
    "tasks": ["ptb"],
    "schemes": ["beat"],
    "classical_models": ["lgbm"],
    "classical_inputs": ["raw"],
    "deep_models": ["cnn"],
    "transfer": False,
    "promote": True,
    "report": False,  # the report has its own tests; a temporary project has no README
}


def run_cli(env: dict[str, str], args: list[str], timeout: int = CLI_TIMEOUT_S) -> str:
    """Run a command from the project root; fail the test with its output on error."""
    proc = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory: pytest.TempPathFactory, project_factory):
    """Both work pools created and every deployment of prefect.yaml deployed."""
    project = project_factory(tmp_path_factory.mktemp("deployed") / "project")
    env = {**os.environ, **prefect_server.env, **project.env}
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL")
    env.pop("ECGOPS_PROFILE")  # the run's `profile` parameter selects it
    cli = [PREFECT]
    run_cli(env, [*cli, "work-pool", "create", "ecgops-cpu", "--type", "process"])
    run_cli(
        env,
        [
            *cli,
            "work-pool",
            "create",
            "ecgops-gpu",
            "--type",
            "docker",
            "--base-job-template",
            "flows/gpu-work-pool.json",
        ],
    )
    out = run_cli(env, [*cli, "--no-prompt", "deploy", "--all"])
    return {"env": env, "project": project, "deploy_output": out, "cli": cli}


def test_deploy_all_creates_every_deployment(deployed, in_server) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployments = {
            f"{client.read_flow(d.flow_id).name}/{d.name}": d.work_pool_name
            for d in client.read_deployments()
        }
    assert deployments == {
        "pipeline/nightly-pipeline": "ecgops-cpu",
        "pipeline/weekly-retrain-and-promote": "ecgops-cpu",
        "sweep/lgbm-sweep": "ecgops-cpu",
        "pretrain-and-transfer/gpu-pretrain-and-transfer": "ecgops-gpu",
    }
    listing = run_cli(deployed["env"], [*deployed["cli"], "deployment", "ls"])
    assert "nightly-pipeline" in listing


def test_nightly_schedule_and_gpu_request_are_visible(deployed) -> None:
    env, cli = deployed["env"], deployed["cli"]
    nightly = run_cli(env, [*cli, "deployment", "inspect", "pipeline/nightly-pipeline"])
    assert "'cron': '0 2 * * *'" in nightly and "'timezone': 'UTC'" in nightly
    assert "'work_pool_name': 'ecgops-cpu'" in nightly
    weekly = run_cli(env, [*cli, "deployment", "inspect", "pipeline/weekly-retrain-and-promote"])
    assert "'cron': '0 6 * * 0'" in weekly and "'promote': True" in weekly
    gpu = run_cli(
        env, [*cli, "deployment", "inspect", "pretrain-and-transfer/gpu-pretrain-and-transfer"]
    )
    assert "'work_pool_name': 'ecgops-gpu'" in gpu and "'image': 'ecgops-gpu:latest'" in gpu
    assert "'driver': 'nvidia'" in gpu and "'capabilities': [['gpu']]" in gpu
    pool = run_cli(env, [*cli, "work-pool", "inspect", "ecgops-gpu"])
    assert "container_create_kwargs" in pool  # the template passes device requests to docker


def trigger_and_work(deployed) -> str:
    """Trigger a smoke run of the nightly deployment, run a worker until it is done."""
    env, cli = deployed["env"], deployed["cli"]
    out = run_cli(
        env,
        [*cli, "deployment", "run", "pipeline/nightly-pipeline", "--params", json.dumps(SMOKE_RUN)],
    )
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
    run_cli(
        env,
        [*cli, "worker", "start", "--pool", "ecgops-cpu", "--run-once"],
        timeout=RUN_TIMEOUT_S,
    )
    return flow_run_id


def test_worker_runs_the_pipeline_and_registers_a_challenger(
    deployed, in_server, read_artifacts
) -> None:
    from mlflow import MlflowClient
    from prefect import get_client

    project = deployed["project"]
    flow_run_id = trigger_and_work(deployed)

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        assert run.state.is_completed(), run.state.message
        assert run.parameters["profile"] == "smoke"

        mlflow = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri)
        exp = mlflow.get_experiment_by_name("ecgops-ptb")
        runs = mlflow.search_runs([exp.experiment_id])
        assert sorted(r.data.tags["mlflow.runName"] for r in runs) == [
            "cnn-beat",
            "lgbm-raw-beat",
        ]
        for mlflow_run in runs:  # MLflow -> Prefect: the training subflow of this run
            sub = client.read_flow_run(mlflow_run.data.tags["prefect_flow_run_id"])
            track = client.read_task_run(sub.parent_task_run_id)
            assert track.flow_run_id == run.id
            assert f"mlflow_run:{mlflow_run.info.run_id}" in sub.tags  # Prefect -> MLflow

    # where the time went: every task run timed, the trainings' MLflow runs tagged
    timings = json.loads((project.root / "outputs" / "timings" / "pipeline.json").read_text())
    by_call = {r["call"]: r for r in timings["runs"]}
    trainings = [r for r in timings["runs"] if r["stage"] in ("train-classical", "train-deep")]
    assert len(trainings) == 2 and all(r["wall_s"] > 0 and not r["cached"] for r in trainings)
    assert {"build[ptb]", "track[classical]", "track[deep]"} <= set(by_call)
    for mlflow_run in runs:
        tagged = mlflow.get_run(mlflow_run.info.run_id).data.tags
        assert float(tagged["ecgops.wall_s"]) > 0 and "ecgops.cpu_s" in tagged
    assert "| train-deep |" in read_artifacts("pipeline-timings")[0].data

    # registered as challenger, then promoted by the gate (the first champion of the task)
    versions = mlflow.search_model_versions("name = 'ecgops-ptb'")
    assert len(versions) == 1 and versions[0].run_id in {r.info.run_id for r in runs}
    champion = mlflow.get_model_version_by_alias("ecgops-ptb", "champion")
    assert champion.version == versions[0].version
    assert "action=promoted" in read_artifacts("registry-decisions")[0].data
    assert (project.root / "outputs" / "metrics" / "ptb" / "beat" / "lgbm-raw.json").exists()


def test_rerun_skips_finished_work_without_new_versions(deployed, in_server) -> None:
    from mlflow import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    project = deployed["project"]
    mlflow = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri)
    runs_before = mlflow.search_runs([mlflow.get_experiment_by_name("ecgops-ptb").experiment_id])
    versions_before = mlflow.search_model_versions("name = 'ecgops-ptb'")

    flow_run_id = trigger_and_work(deployed)

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        assert state.is_completed(), state.message
        trainings = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                name=TaskRunFilterName(any_=["lgbm-raw-ptb-beat", "cnn-ptb-beat"])
            )
        )
    latest = sorted(trainings, key=lambda t: t.created)[-2:]
    assert {t.state.name for t in latest} == {"Cached"}
    runs_after = mlflow.search_runs([mlflow.get_experiment_by_name("ecgops-ptb").experiment_id])
    assert len(runs_after) == len(runs_before)  # nothing retrained
    assert len(mlflow.search_model_versions("name = 'ecgops-ptb'")) == len(versions_before)
