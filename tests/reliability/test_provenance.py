"""Every training run carries what it takes to rebuild it: git commit, DVC data hash, params,
package versions (issue #10, reproducibility).

One classical and one deep run are trained for real on the PTB fixture beats (local SQLite
MLflow store, no server); the data hash is checked against the one real ``dvc add`` computes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from ecgops.config import Config

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
# packages whose version changes a run's numbers: each must be a run tag equal to the installed one
RESULT_PACKAGES = ("numpy", "pandas", "scikit-learn", "lightgbm", "torch", "mlflow", "dvc")


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _dvc_md5(repo: Path, target: Path) -> str:
    """The md5 that real DVC records for ``target`` (``dvc add`` in a throwaway repo)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    for cmd in (["init", "--no-scm", "-q"], ["add", "-q", str(target.relative_to(repo))]):
        proc = subprocess.run(
            dvc + cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    outs = yaml.safe_load(target.with_name(target.name + ".dvc").read_text())["outs"]
    return outs[0]["md5"]


@pytest.fixture
def ptb_project(cfg_smoke: Config) -> Config:
    """The PTB fixture beats as the project's beat table, split."""
    from ecgops.data.splits import make_splits

    processed = cfg_smoke.path("processed")
    processed.mkdir(parents=True)
    (processed / "ptb.parquet").write_bytes((FIXTURES / "beats_ptb.parquet").read_bytes())
    make_splits(cfg_smoke, "ptb")
    return cfg_smoke


def test_every_training_run_records_commit_data_hash_params_and_packages(
    ptb_project: Config, tmp_path: Path
) -> None:
    import mlflow
    import torch

    from ecgops.training.classical import run_params as classical_params
    from ecgops.training.classical import train_classical
    from ecgops.training.deep import run_params as deep_params
    from ecgops.training.deep import task_config, train_deep

    cfg = ptb_project
    threads = torch.get_num_threads()
    try:
        records = {
            "classical": train_classical(cfg, "ptb", "beat", "lr", "raw"),
            "deep": train_deep(cfg, "ptb", "beat", "cnn"),
        }
    finally:
        torch.set_num_threads(threads)
    expected_params = {
        "classical": classical_params(cfg, "lr", "raw", cfg.classical.imbalance),
        "deep": deep_params(task_config(cfg, "ptb"), "cnn"),
    }
    table = cfg.path("processed") / "ptb.parquet"
    dvc_hash = _dvc_md5(tmp_path, table)  # tmp_path holds processed/: the table is in the repo
    head = _head()
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)

    for family, record in records.items():
        run = client.get_run(record["mlflow_run_id"])
        tags, params = run.data.tags, run.data.params
        assert tags["git_commit"] in (head, f"{head}-dirty"), family
        assert tags["data_version"] == dvc_hash == record["data_version"], family
        assert tags["git_commit"] == record["git_commit"], family  # the metrics JSON agrees
        assert tags["seed"] == str(cfg.seed) == params["seed"], family
        assert tags["profile"] == "smoke" and tags["split_scheme"] == "beat", family
        for name in RESULT_PACKAGES:
            assert tags[f"pkg.{name}"] == metadata.version(name), (family, name)
        flat = _flatten(expected_params[family])
        assert flat, family
        missing = {k: v for k, v in flat.items() if params.get(k) != str(v)}
        assert not missing, (family, missing)


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
