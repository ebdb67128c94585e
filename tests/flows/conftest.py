"""Fixtures of the flow tests: a real Prefect server on 127.0.0.1 and throwaway smoke projects.

The server runs for the whole session in a subprocess (``prefect server start``) with its
home and SQLite database in a temporary directory. A smoke project is a temporary project root
(params.yaml copied, ECGOPS_ROOT pointing at it) whose raw data are the repository's fixtures
and whose MLflow tracking store is a SQLite file inside it, so no test touches the real project.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # flows/ is a top-level package beside ecgops/
FIXTURES = REPO / "tests" / "fixtures"
PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER_START_TIMEOUT_S = 120
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "false",
}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until ``url`` answers 200, or fail with the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"Prefect server did not become healthy at {url}")


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server and the environment that points a client at it."""

    api_url: str
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect 3 server on 127.0.0.1 (SQLite in a temporary PREFECT_HOME)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **QUIET,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    }
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(f"{api_url}/health", proc, SERVER_START_TIMEOUT_S)
    except RuntimeError as exc:
        proc.terminate()
        proc.wait(timeout=30)
        raise RuntimeError(f"{exc}:\n{(home / 'server.log').read_text()[-3000:]}") from exc
    yield PrefectServer(api_url=api_url, home=home, env=env)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    log.close()


@dataclass(frozen=True)
class SmokeProject:
    """A throwaway project root on the smoke profile."""

    root: Path
    tracking_uri: str
    env: dict[str, str]


def make_project(root: Path) -> SmokeProject:
    """A project root with params.yaml and the environment that selects it."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {
        "ECGOPS_ROOT": str(root),
        "ECGOPS_PROFILE": "smoke",
        "ECGOPS_DATA_SOURCE": str(FIXTURES / "raw"),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "ECGOPS_RETRY_BACKOFF_S": "1",
    }
    return SmokeProject(root=root, tracking_uri=tracking_uri, env=env)


@pytest.fixture(scope="session")
def project_factory():
    """``project_factory(root)``: a smoke project at ``root`` (see :func:`make_project`)."""
    return make_project


@pytest.fixture
def in_server(prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch) -> PrefectServer:
    """Point this process's Prefect client (and any subprocess) at the test server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for key, value in prefect_server.env.items():
        if key != "PREFECT_API_DATABASE_CONNECTION_URL":
            monkeypatch.setenv(key, value)
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server


@pytest.fixture
def smoke_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmokeProject:
    """A fresh smoke project selected through the environment."""
    project = make_project(tmp_path / "project")
    for key, value in project.env.items():
        monkeypatch.setenv(key, value)
    return project


@pytest.fixture(scope="module")
def ingested_project(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer
) -> Iterator[SmokeProject]:
    """A smoke project whose PTB data has been ingested once by the ``ingest`` flow."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = make_project(tmp_path_factory.mktemp("ingested") / "project")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**prefect_server.env, **project.env}.items():
            if key != "PREFECT_API_DATABASE_CONNECTION_URL":
                mp.setenv(key, value)
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
            from flows.ingest import ingest

            ingest(profile="smoke", tasks=["ptb"])
            yield project


@pytest.fixture
def read_flow_runs():
    """``read_flow_runs(ids=None)``: flow runs on the test server (see :func:`flow_runs`)."""
    return flow_runs


@pytest.fixture
def read_artifacts():
    """``read_artifacts(key)``: artifacts of a key on the test server, newest first."""
    return artifacts


def flow_runs(ids: list | None = None) -> list:
    """Flow runs on the test server (only ``ids`` when given), newest first."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flt = FlowRunFilter(id=FlowRunFilterId(any_=list(ids))) if ids else None
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=flt, limit=200)


def artifacts(key: str) -> list:
    """Artifacts of a key on the test server, newest first."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
