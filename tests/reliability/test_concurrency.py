"""Two pipeline runs at once: the registry and the DVC cache stay consistent (issue #10, faults).

Threads in one process are covered in ``tests/registry/test_register.py``; here the writers
are separate *processes*, as two ``ecgops`` commands (or two Prefect workers) would be.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fixtures_mlflow import fit_lr, log_run

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0
HOLD_S = 2.0

REGISTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from fixtures_mlflow import parts, server_config

    from ecgops.registry.register import register_best

    uri, workdir, prefix, ready = sys.argv[1:5]
    cfg = server_config(uri, Path(workdir), prefix)
    train = parts("ptb")["train"]
    Path(ready).touch()  # imports done: the next step asks for the registry lock
    print("VERSION", register_best(cfg, "ptb", train_data=train).version, flush=True)
    """
)


def _wait_for(paths: list[Path], procs: list[subprocess.Popen], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                out, _ = proc.communicate()
                pytest.fail(f"register process exited early ({proc.returncode}):\n{out}")
        if time.monotonic() > deadline:
            pytest.fail(f"register processes not ready within {timeout_s:.0f} s")
        time.sleep(0.2)


@pytest.mark.integration
def test_two_processes_registering_at_once_make_exactly_one_version(
    registry_cfg, fixture_parts, mlflow_server: str, tmp_path: Path
) -> None:
    from ecgops.registry.client import (
        CHALLENGER,
        mlflow_client,
        registered_model_name,
        registry_lock,
    )

    cfg = registry_cfg()
    ptb = fixture_parts["ptb"]
    log_run(cfg, "ptb", fit_lr(ptb["train"]), ptb, name="lr")
    client = mlflow_client(cfg)
    name = registered_model_name(cfg, "ptb")
    script = tmp_path / "register.py"
    script.write_text(REGISTER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    workdir = cfg.path("outputs").parent
    prefix = cfg.tracking.experiment_prefix
    ready = [tmp_path / f"ready-{i}" for i in range(2)]

    procs = []
    with registry_lock(cfg):  # a third writer holds the lock: both processes must queue
        for flag in ready:
            args = [sys.executable, str(script), mlflow_server, str(workdir), prefix, str(flag)]
            procs.append(
                subprocess.Popen(
                    args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
        try:
            _wait_for(ready, procs, START_TIMEOUT_S)
            time.sleep(HOLD_S)
            assert [p.poll() for p in procs] == [None, None]  # waiting on the lock
            assert client.search_model_versions(f"name = '{name}'") == []
        except BaseException:
            for proc in procs:
                proc.kill()
            raise
    outputs = [p.communicate(timeout=START_TIMEOUT_S)[0] for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    reported = [line for out in outputs for line in out.splitlines() if line.startswith("VERSION")]
    assert reported == ["VERSION 1", "VERSION 1"], outputs
    versions = client.search_model_versions(f"name = '{name}'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_model_version_by_alias(name, CHALLENGER).version == "1"


# ---- DVC ---------------------------------------------------------------------------------------


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cache_files(repo: Path) -> set[str]:
    cache = repo / ".dvc" / "cache"
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()}


def test_dvc_refuses_a_second_writer_on_the_same_repo_and_keeps_its_cache(tmp_path: Path) -> None:
    """``scripts/main.sh`` ends with ``dvc commit``: a second one while the first holds the
    repo lock fails clearly and changes neither the pointer file nor the cache."""
    from dvc.repo import Repo

    repo = tmp_path / "repo"
    repo.mkdir()
    table = repo / "table.csv"
    table.write_text("0.1,0.2,0\n")
    assert _dvc(repo, "init", "--no-scm", "-q").returncode == 0
    assert _dvc(repo, "add", "-q", "table.csv").returncode == 0
    pointer = repo / "table.csv.dvc"
    pointer_before, cache_before = pointer.read_bytes(), _cache_files(repo)
    table.write_text("0.3,0.4,1\n")  # a new output for the second writer to commit

    with Repo(str(repo)) as first, first.lock:  # the first writer, mid-command
        busy = _dvc(repo, "commit", "--force", "table.csv.dvc")

    assert busy.returncode != 0
    assert "Unable to acquire lock" in busy.stderr + busy.stdout
    assert pointer.read_bytes() == pointer_before
    assert _cache_files(repo) == cache_before

    done = _dvc(repo, "commit", "--force", "table.csv.dvc")  # lock released: it goes through
    assert done.returncode == 0, done.stderr
    md5 = hashlib.md5(table.read_bytes()).hexdigest()
    assert md5 in pointer.read_text()
    assert f"files/md5/{md5[:2]}/{md5[2:]}" in _cache_files(repo) - cache_before
