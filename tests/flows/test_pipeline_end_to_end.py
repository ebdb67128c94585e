"""The whole smoke pipeline, from an empty project, as a user runs it (issue 16).

One project, two pipelines: first a reduced pipeline of another profile (its runs sit in the
same MLflow experiments), then ``ecgops --profile smoke pipeline`` through the real CLI. The
second must end with a champion per task, registered from its own runs only (same profile, same
data and split versions), and record where its time went.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PIPELINE_TIMEOUT_S = 1500
OTHER_PROFILE = "smoke-other"


def add_other_profile(root: Path) -> None:
    """Give the project's params.yaml a second small profile (other sizes, same code)."""
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    other = json.loads(json.dumps(params["profiles"]["smoke"]))
    other.setdefault("classical", {}).setdefault("lgbm", {})["n_estimators"] = 7
    params["profiles"][OTHER_PROFILE] = other
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def run_tags(client, run_id: str) -> dict[str, str]:
    """The tags of an MLflow run."""
    return client.get_run(run_id).data.tags


@pytest.fixture(scope="module")
def two_pipelines(
    tmp_path_factory: pytest.TempPathFactory, prefect_server, project_factory
) -> dict:
    """Run the other profile's reduced pipeline, then the smoke pipeline by the CLI."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = project_factory(tmp_path_factory.mktemp("e2e") / "project")
    shutil.copy(REPO / "README.md", project.root / "README.md")  # the report updates it
    add_other_profile(project.root)
    server_env = {k: v for k, v in prefect_server.env.items() if "DATABASE" not in k}
    env = {**server_env, **project.env}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.setenv("ECGOPS_PROFILE", OTHER_PROFILE)
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
            from flows.pipeline import pipeline

            state = pipeline(
                profile=OTHER_PROFILE,
                classical_models=["lgbm"],
                classical_inputs=["raw"],
                deep_models=["cnn"],
                transfer=False,
                register_challengers=False,  # only the smoke pipeline registers
                report=False,
                return_state=True,
            )
            assert state.is_completed(), state.message
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ecgops")), "--profile", "smoke", "pipeline"],
        cwd=project.root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=PIPELINE_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return {"project": project, "output": output}


def test_smoke_pipeline_ends_with_a_champion_per_task(two_pipelines) -> None:
    from mlflow import MlflowClient

    project = two_pipelines["project"]
    client = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri)
    for task in ("ptb", "mitbih"):
        champion = client.get_model_version_by_alias(f"ecgops-{task}", "champion")
        tags = run_tags(client, champion.run_id)
        assert tags["profile"] == "smoke", tags
        assert (project.root / "outputs" / "model_cards" / f"{task}.md").is_file()
    assert (project.root / "reports" / "results.html").is_file()


def test_registration_picks_only_the_registering_pipelines_runs(two_pipelines) -> None:
    """Runs of the other profile are in the same experiments but never become candidates."""
    from mlflow import MlflowClient

    from ecgops.config import load_config
    from ecgops.tracking import data_version, split_version

    project = two_pipelines["project"]
    client = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri)
    cfg = load_config(profile="smoke", root=project.root)
    for task in ("ptb", "mitbih"):
        runs = client.search_runs(
            [client.get_experiment_by_name(f"ecgops-{task}").experiment_id],
            filter_string=f"tags.profile = '{OTHER_PROFILE}'",
        )
        assert runs, f"the other profile logged no {task} run"
        other_ids = {r.info.run_id for r in runs}
        for version in client.search_model_versions(f"name='ecgops-{task}'"):
            assert version.run_id not in other_ids
            tags = run_tags(client, version.run_id)
            assert tags["data_version"] == data_version(cfg, task)
            assert tags["split_version"] == split_version(cfg, task)


def test_every_stage_and_training_is_timed(two_pipelines) -> None:
    project = two_pipelines["project"]
    timings = json.loads((project.root / "outputs" / "timings" / "pipeline.json").read_text())
    assert timings["profile"] == "smoke"
    rows = timings["runs"]
    stages = {row["stage"] for row in rows}
    assert {"build", "train-classical", "train-deep", "register"} <= stages, stages
    assert all(row["wall_s"] >= 0 and row["cpu_s"] >= 0 for row in rows)
