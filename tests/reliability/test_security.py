"""Security defaults: loopback binding, no credentials in the repository, pinned dependencies
(issue #10, security; the dependency audit in CI: ``test_ci.py``).

Also covered elsewhere: the model server's command line (``tests/test_serve.py``), compose ports
on 127.0.0.1 only and no literal secrets in compose (``tests/containers/test_image.py``), models
loaded only from the project's registry (``test_model_trust.py``, ``tests/test_predict.py``).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecgops.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    re.compile(r"(?i)(api[_-]?key|secret|token)\s*[:=]\s*['\"][A-Za-z0-9/+]{20,}['\"]"),
    re.compile(r"ghp_[A-Za-z0-9]{36}"),  # GitHub token
]


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines() if line]


def test_servers_bind_to_loopback_by_default() -> None:
    cfg = load_config(root=ROOT, profile="full")
    assert cfg.serving.host == "127.0.0.1"
    for profile in ("smoke", "quick", "full"):
        assert load_config(root=ROOT, profile=profile).serving.host == "127.0.0.1"


def test_no_credentials_in_tracked_files() -> None:
    hits = []
    for path in _tracked_files():
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [
            f"{path.relative_to(ROOT)}: {p.pattern}" for p in SECRET_PATTERNS if p.search(text)
        ]
    assert not hits, hits


def test_every_locked_dependency_is_pinned() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines, "requirements.lock is empty"
    unpinned = [line for line in lines if "==" not in line]
    assert not unpinned, unpinned


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement line (``Foo_Bar[x]==1`` -> foo-bar)."""
    name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_pinned_by_the_lock_or_exactly() -> None:
    """``scripts/setup.sh`` installs with ``pip -c requirements.lock``: a dependency the lock
    does not name would float. Each one (extras included) is in the lock or pinned ``==``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    locked = {
        _name(line)
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    floating = [req for req in declared if _name(req) not in locked and "==" not in req]
    assert declared and not floating, floating


# ---- the Dask cluster of the sweep flow -------------------------------------------------------


@pytest.fixture(scope="module")
def dask_sockets() -> Iterator[dict[str, list[str]]]:
    """The listening addresses of the local Dask cluster that ``ecgops.orchestration`` starts
    (its own cluster arguments, one worker)."""
    distributed = pytest.importorskip("distributed")
    from ecgops.orchestration.concurrency import dask_runner

    kwargs = {**dask_runner(n_workers=1).cluster_kwargs, "n_workers": 1}

    def worker_sockets(dask_worker) -> list[str]:
        http = [s.getsockname()[0] for s in dask_worker.http_server._sockets.values()]
        return [dask_worker.address, *http]

    with (
        distributed.LocalCluster(**kwargs) as cluster,
        distributed.Client(cluster) as client,
    ):
        http = cluster.scheduler.http_server._sockets.values()
        yield {
            "scheduler": [cluster.scheduler_address],
            "scheduler_http": [s.getsockname()[0] for s in http],
            "workers": [a for addrs in client.run(worker_sockets).values() for a in addrs],
        }


def _loopback(address: str) -> bool:
    host = re.sub(r"^\w+://", "", address).rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def test_dask_scheduler_and_workers_listen_on_loopback(dask_sockets) -> None:
    addresses = dask_sockets["scheduler"] + dask_sockets["workers"]
    assert addresses and all(_loopback(a) for a in addresses), addresses


def test_dask_dashboard_listens_on_loopback(dask_sockets) -> None:
    addresses = dask_sockets["scheduler_http"]
    assert addresses and all(_loopback(a) for a in addresses), addresses
