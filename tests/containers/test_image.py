"""Container images and compose stack.

Fast checks (always run): the GPU Dockerfile stays in step with the CPU one, the compose stack
publishes ports on 127.0.0.1 only and keeps passwords out of the repo, every variable it reads
is documented in docker/env.example, and the healthcheck probe works against a real local server.

Image test (opt-in, slow): builds the CPU image with podman from the local debootstrap base and
runs ``ecgops --help`` and, once the CLI has it, the smoke pipeline inside the container (on
the fixture records baked into the image; metrics land in a mounted outputs folder).
Enable with ``ECGOPS_CONTAINER_TESTS=1`` on a host with rootful podman (docker/podman-setup.sh).
Build inputs come from the environment (see docker/build-images.sh): ``ECGOPS_WHEELS_DIR``
(default /opt/wheels when it exists), ``ECGOPS_BUILD_CA`` (default: the host CA bundle),
``ECGOPS_TORCH_INDEX_URL`` (default: empty when a local torch wheel exists).
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
IMAGE = "ecgops-cpu:test"
BUILD_TIMEOUT_S = 3600
RUN_TIMEOUT_S = 1800
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_WHEELS = Path("/opt/wheels")


def _load_compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _instructions(dockerfile: Path, skip_marked: bool) -> list[str]:
    """Dockerfile lines without comments/blank lines; drop the line after a '# GPU:' comment."""
    out: list[str] = []
    skip_next = False
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.startswith("# GPU:"):
            skip_next = skip_marked
            continue
        if not line or line.startswith("#"):
            continue
        if skip_next:
            skip_next = line.endswith("\\")  # a marked instruction may span lines
            continue
        out.append(line)
    return out


def test_gpu_dockerfile_differs_from_cpu_only_in_marked_lines() -> None:
    cpu = _instructions(DOCKER / "Dockerfile.cpu", skip_marked=False)
    gpu = _instructions(DOCKER / "Dockerfile.gpu", skip_marked=True)
    cpu_torch_args = [i for i in cpu if i.startswith(("ARG TORCH_INDEX_URL", "ARG TORCH_VERSION"))]
    assert sorted(cpu_torch_args) == [
        "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu",
        "ARG TORCH_VERSION=",
    ]
    assert [i for i in cpu if i not in cpu_torch_args] == gpu


def test_runtime_stage_is_non_root_and_has_no_build_tools() -> None:
    for name in ("Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.postgres"):
        text = (DOCKER / name).read_text()
        runtime = text.split("AS runtime")[-1]  # postgres has a single stage
        users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
        assert users and users[-1] not in ("root", "0"), f"{name}: last USER must not be root"
        for tool in ("build-essential", "gcc", "g++", "python3-dev", "pip install"):
            assert tool not in runtime, f"{name}: runtime stage contains {tool!r}"
        assert re.search(r"^ARG BASE_IMAGE=\S+:\S+", text, flags=re.M), f"{name}: base not pinned"


def test_compose_publishes_ports_on_loopback_only() -> None:
    services = _load_compose()["services"]
    published = [(name, p) for name, svc in services.items() for p in svc.get("ports", [])]
    assert {name for name, _ in published} == {"mlflow", "prefect-server"}
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_services_have_healthchecks_restart_and_named_volumes() -> None:
    compose = _load_compose()
    services = compose["services"]
    assert {"postgres", "mlflow", "prefect-server", "worker-cpu", "worker-gpu"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert svc.get("restart") == "unless-stopped", f"{name} has no restart policy"
    named = set(compose["volumes"])
    assert {"pgdata", "mlartifacts", "dvc-cache", "ecgops-data"} <= named
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_compose_has_no_literal_secrets_and_env_example_documents_every_variable() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    documented = {
        line.split("=", 1)[0]
        for line in (DOCKER / "env.example").read_text().splitlines()
        if re.match(r"^[A-Z0-9_]+=", line)
    }
    assert used <= documented, f"undocumented in env.example: {sorted(used - documented)}"
    for var in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "PREFECT_DB_PASSWORD"):
        # required (no default): compose refuses to start without it
        assert re.search(rf"\$\{{{var}:\?", text), f"{var} must be required, not defaulted"
    required = r"\$\{[A-Z0-9_]+:\?[^}]*\}"
    for name, svc in _load_compose()["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if "PASSWORD" in key:
                assert re.fullmatch(required, str(value)), f"{name}: {key} is not from .env"
            if "://" in str(value) and "@" in str(value):  # credentials inside a URL
                assert re.search(rf"://\S*:{required}@", str(value)), f"{name}: {key}"


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecgops_healthcheck", DOCKER / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_healthcheck_probe_against_real_local_server() -> None:
    hc = _load_healthcheck()
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert hc.probe(f"http://127.0.0.1:{port}/health") is None
        assert "HTTP 503" in hc.probe(f"http://127.0.0.1:{port}/other")
        assert hc.probe(f"tcp://127.0.0.1:{port}") is None
        assert hc.main([f"http://127.0.0.1:{port}/health", f"tcp://127.0.0.1:{port}"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert hc.probe(f"tcp://127.0.0.1:{closed}", timeout=1) is not None
    assert hc.main(["--wait", "0", f"http://127.0.0.1:{closed}/health"]) == 1
    assert "unsupported scheme" in hc.probe("ftp://127.0.0.1/x")


# ------------------------------------------------------------------------------------------
# opt-in: build the CPU image and run the CLI inside it
# ------------------------------------------------------------------------------------------


def _container_skip_reason() -> str | None:
    if os.environ.get("ECGOPS_CONTAINER_TESTS") != "1":
        return "container tests are opt-in: set ECGOPS_CONTAINER_TESTS=1 (needs rootful podman)"
    if shutil.which("podman") is None:
        return "podman is not installed (run docker/podman-setup.sh)"
    if os.geteuid() != 0:
        return "the container tests use rootful podman: run as root"
    return None


def _build_env() -> dict[str, str]:
    env = dict(os.environ, LOCAL_BASE=os.environ.get("ECGOPS_LOCAL_BASE", "1"), TAG="test")
    wheels = os.environ.get("ECGOPS_WHEELS_DIR")
    if wheels is None and any(LOCAL_WHEELS.glob("torch-*+cpu-*.whl")):
        wheels = str(LOCAL_WHEELS)
    if wheels:
        env["WHEELS_DIR"] = wheels
        env.setdefault("TORCH_INDEX_URL", "")
    if "ECGOPS_TORCH_INDEX_URL" in os.environ:
        env["TORCH_INDEX_URL"] = os.environ["ECGOPS_TORCH_INDEX_URL"]
    ca = os.environ.get("ECGOPS_BUILD_CA", str(HOST_CA) if HOST_CA.exists() else "")
    if ca:
        env["EXTRA_CA"] = ca
    return env


@pytest.fixture(scope="module")
def cpu_image() -> str:
    reason = _container_skip_reason()
    if reason:
        pytest.skip(reason)
    subprocess.run(
        ["bash", str(DOCKER / "build-images.sh"), "cpu"],
        cwd=ROOT,
        env=_build_env(),
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return IMAGE


def _podman_run(image: str, *args: str, volumes: tuple[str, ...] = ()) -> str:
    cmd = ["podman", "run", "--rm", "--network", "host"]
    for v in volumes:
        cmd += ["-v", v]
    proc = subprocess.run(
        [*cmd, image, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed in the container:\n{output[-4000:]}"
    return output


@pytest.mark.container
@pytest.mark.slow
def test_cpu_image_runs_cli_as_non_root(cpu_image: str) -> None:
    help_text = _podman_run(cpu_image, "--help")
    assert "Usage" in help_text and "ecgops" in help_text
    uid = _podman_run(cpu_image, "python", "-c", "import os; print(os.getuid())").strip()
    assert uid.splitlines()[-1] != "0"
    versions = _podman_run(
        cpu_image,
        "python",
        "-c",
        "import torch, mlflow, prefect, psycopg2; print(torch.__version__, mlflow.__version__)",
    )
    assert "+cpu" in versions


@pytest.mark.container
@pytest.mark.slow
def test_cpu_image_runs_smoke_pipeline(cpu_image: str, tmp_path: Path) -> None:
    help_text = _podman_run(cpu_image, "--help")
    if not re.search(r"^\W*pipeline\b", help_text, flags=re.M):
        pytest.skip("`ecgops pipeline` is not in the CLI yet; --help checked above")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    outputs.chmod(0o777)  # written by the image's non-root user
    # the smoke profile reads the fixture records baked into the image (/app/tests/fixtures/raw)
    _podman_run(cpu_image, "--profile", "smoke", "pipeline", volumes=(f"{outputs}:/app/outputs",))
    metrics = list((outputs / "metrics").rglob("*.json"))
    assert metrics, f"the smoke pipeline wrote no metrics under {outputs}"


def test_deps_from_pyproject_swaps_torch_pin_and_rejects_unknown_extras(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("deps_spec", DOCKER / "deps_from_pyproject.py")
    assert spec and spec.loader
    deps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deps)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=2", "torch==2.13.0"]\n'
        '[project.optional-dependencies]\nserver = ["psycopg2-binary==2.9.13"]\n'
    )
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6\ntorch==2.13.0+cpu\ntorchvision==0.1\n")
    out = tmp_path / "out"
    assert deps.main([str(pyproject), str(lock), "server", "2.13.0", str(out)]) == 0
    assert (out / "requirements.txt").read_text().split() == [
        "numpy>=2",
        "torch==2.13.0",
        "psycopg2-binary==2.9.13",
    ]
    assert (out / "constraints.txt").read_text().splitlines() == [
        "numpy==2.4.6",
        "torch==2.13.0",
        "torchvision==0.1",
    ]
    assert deps.main([str(pyproject), str(lock), "", "", str(out)]) == 0
    assert "torch==2.13.0+cpu" in (out / "constraints.txt").read_text()
    with pytest.raises(SystemExit, match="no optional-dependencies group"):
        deps.main([str(pyproject), str(lock), "gpu", "", str(out)])
