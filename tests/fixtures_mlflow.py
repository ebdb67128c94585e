"""Real MLflow fixtures for the registry, predict and serve tests (a pytest plugin).

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["fixtures_mlflow"]``.

- ``mlflow_server``: one real ``mlflow server`` per session on 127.0.0.1 (free port, SQLite
  backend and artifact folder in a temporary directory, proxied artifacts); killed at the end.
- ``registry_cfg``: a factory of smoke configs pointing at that server, each with its own
  experiment prefix (so its registered models ``<prefix>-ptb`` / ``<prefix>-mitbih`` are its
  own) and its outputs under the test's ``tmp_path``.
- ``fixture_parts`` / :func:`parts`: the fixture beat tables (tiny cuts of the real records)
  split into train / val / test, stratified and seeded.
- :func:`log_run`: a finished "training" run as the trainers make it (provenance tags,
  ``val_*``/``test_*`` metrics, a pyfunc model logged with ``log_beat_model``).
- ``ptb_champion``: a session-wide registered model with a champion, for predict and serve.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ecgops.config import Config, deep_merge, load_config

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SERVER_START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 5.0
PART_SIZES = {"val": 20, "test": 30}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers 200 (fails early when ``proc`` exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def kill_group(proc: subprocess.Popen) -> None:
    """Terminate a server started in its own session (and its workers)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server + registry on 127.0.0.1; yields its URI."""
    work = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
        "--artifacts-destination", str(work / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", SERVER_START_TIMEOUT_S, proc)
    except Exception:
        kill_group(proc)
        raise RuntimeError(
            "MLflow server did not start:\n" + (work / "server.log").read_text()[-3000:]
        ) from None
    yield uri
    kill_group(proc)


def server_config(
    uri: str, workdir: Path, prefix: str, profile: str = "smoke", **overrides: Any
) -> Config:
    """Config on the test server: its own experiment prefix, outputs under ``workdir``.

    The registry ranks and registers runs of ``splits.scheme`` (the scheme :func:`log_run`
    logs by default): ``registry.select_scheme`` is null unless a test sets it.
    """
    base: dict[str, Any] = {
        "paths": {
            key: str(workdir / key)
            for key in ("raw", "processed", "splits", "features", "outputs", "models")
        },
        "tracking": {"uri": uri, "artifact_root": None, "experiment_prefix": prefix},
        "registry": {"select_scheme": None},
    }
    return load_config(root=ROOT, profile=profile, overrides=deep_merge(base, overrides))


@pytest.fixture
def registry_cfg(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Config]:
    """Factory: ``registry_cfg(profile="smoke", **overrides)`` -> a config of one project
    (a fresh experiment prefix and folders per test)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("ECGOPS_PROFILE", raising=False)
    prefix = f"t{uuid.uuid4().hex[:8]}"

    def make(profile: str = "smoke", **overrides: Any) -> Config:
        return server_config(mlflow_server, tmp_path, prefix, profile, **overrides)

    return make


# ---- data -------------------------------------------------------------------------------------


def beat_table(task: str) -> pd.DataFrame:
    """The fixture beat table of a task (real beats cut from the raw fixtures)."""
    return pd.read_parquet(FIXTURES / f"beats_{task}.parquet")


def parts(task: str, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Stratified, seeded train / val / test parts of the fixture table."""
    from sklearn.model_selection import train_test_split

    df = beat_table(task)
    rest, test = train_test_split(
        df, test_size=PART_SIZES["test"], stratify=df["label"], random_state=seed
    )
    train, val = train_test_split(
        rest, test_size=PART_SIZES["val"], stratify=rest["label"], random_state=seed
    )
    return {
        k: v.reset_index(drop=True) for k, v in (("train", train), ("val", val), ("test", test))
    }


@pytest.fixture(scope="session")
def fixture_parts() -> dict[str, dict[str, pd.DataFrame]]:
    """``{task: {"train", "val", "test"}}`` of both fixture tables."""
    return {task: parts(task) for task in ("ptb", "mitbih")}


def xy(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Beats and labels of a beat table."""
    from ecgops.schema import labels, signals

    return signals(df), labels(df)


def fit_lr(df: pd.DataFrame, c: float = 1.0, rows: int | None = None) -> Any:
    """A logistic regression on (the first ``rows`` of) a beat table."""
    from sklearn.linear_model import LogisticRegression

    x, y = xy(df if rows is None else df.iloc[:rows])
    return LogisticRegression(C=c, max_iter=500).fit(x, y)


def fit_prior(df: pd.DataFrame) -> Any:
    """A model that ignores its input (always the majority class): balanced accuracy 0.5."""
    from sklearn.dummy import DummyClassifier

    x, y = xy(df)
    return DummyClassifier(strategy="prior").fit(x, y)


def log_run(
    cfg: Config,
    task: str,
    predictor: Any,
    data: dict[str, pd.DataFrame],
    *,
    name: str = "model",
    scheme: str = "beat",
    val_score: float | None = None,
    model_task: str | None = None,
    log_model: bool = True,
) -> str:
    """A finished training run as the trainers make it; returns its run id.

    Args:
        cfg: configuration (experiment ``<prefix>-<task>``).
        task: the run's task tag.
        predictor: fitted model with ``predict_proba``.
        data: ``{"val", "test"}`` parts for the logged metrics.
        name: run name.
        scheme: split scheme tag.
        val_score: overrides the logged ``val_balanced_accuracy`` (to steer the selection).
        model_task: task the pyfunc model declares (default ``task``).
        log_model: log the pyfunc model.
    """
    import mlflow

    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.registry.pyfunc import log_beat_model
    from ecgops.tracking import start_run

    model_task = model_task or task
    with start_run(cfg, task, name, scheme=scheme) as run:
        metrics = {}
        for part in ("val", "test"):
            x, y = xy(data[part])
            for key, value in classification_metrics(y, predictor.predict_proba(x)).items():
                if np.isfinite(value):
                    metrics[f"{part}_{key}"] = value
        if val_score is not None:
            metrics["val_balanced_accuracy"] = val_score
        mlflow.log_metrics(metrics)
        if log_model:
            x, _ = xy(data["test"])
            log_beat_model(predictor, model_task, cfg.class_names(model_task), x[:3])
        return run.info.run_id


@pytest.fixture(scope="session")
def _ptb_champion_session(
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    fixture_parts: dict[str, dict[str, pd.DataFrame]],
) -> tuple[Config, str]:
    from ecgops.registry.promote import promote
    from ecgops.registry.register import register_best

    data = fixture_parts["ptb"]
    # MLflow's set_tracking_uri also sets $MLFLOW_TRACKING_URI: keep it out of other tests.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        mp.delenv("ECGOPS_PROFILE", raising=False)
        cfg = server_config(mlflow_server, tmp_path_factory.mktemp("champion"), "champ")
        log_run(cfg, "ptb", fit_lr(data["train"]), data, name="lr")
        register_best(cfg, "ptb", train_data=data["train"], val_data=data["val"])
        decision = promote(cfg, "ptb", eval_data=data["test"])
        assert decision.promoted, str(decision)
    return cfg, f"models:/{cfg.experiment_name('ptb')}@champion"


@pytest.fixture
def ptb_champion(
    _ptb_champion_session: tuple[Config, str],
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Config, str]:
    """A registered ``<prefix>-ptb`` model with a champion (made once): ``(cfg, its URI)``."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("ECGOPS_PROFILE", raising=False)
    return _ptb_champion_session
