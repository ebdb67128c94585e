"""HTTP serving of a registered model with MLflow's scoring server, on 127.0.0.1 by default.

``ecgops serve --task ptb`` runs the documented equivalent of::

    MLFLOW_TRACKING_URI=<project registry> \\
    mlflow models serve -m models:/ecgops-ptb@champion --env-manager local \\
        -h 127.0.0.1 -p 5001 -w 1

``POST /invocations`` takes JSON (``{"inputs": [[187 values], ...]}``, ``dataframe_split``
with or without ``columns`` ``x0..x186``, or ``dataframe_records``) and answers
``{"predictions": [{"pred", "pred_name", "p_0", ...}, ...]}``; invalid rows get HTTP 400 with
the model's message. ``GET /ping`` is the health check. ``--env-manager local`` serves from
this environment (no virtualenv is built), so the pinned packages of the project are used.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.errors import EcgopsError, RegistryError

log = logging.getLogger(__name__)

PING_INTERVAL_S = 0.5
PING_TIMEOUT_S = 2.0


def serve_command(uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The ``mlflow models serve`` command line (run with this interpreter)."""
    return [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", uri, "--env-manager", "local", "-h", host, "-p", str(port), "-w", str(workers),
    ]  # fmt: skip


def serve_env(cfg: Config) -> dict[str, str]:
    """Environment of the server: the project's tracking URI, this venv's ``bin`` on PATH."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = cfg.tracking_uri
    bindir = str(Path(sys.executable).parent)  # uvicorn is started by name
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(
    cfg: Config, task: str | None, model: str | None, host: str | None, port: int | None
) -> tuple[str, str, int]:
    """Model URI (checked to exist), host and port of a server.

    Raises:
        RegistryError: no such model / alias, or an untrusted URI.
    """
    from ecgops.registry.client import alias_version, mlflow_client
    from ecgops.registry.model import resolve_model_uri

    uri = resolve_model_uri(cfg, task=task, model=model)
    client = mlflow_client(cfg)
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri[len("models:/") :].split("@", 1)
        if alias_version(client, name, alias) is None:
            raise RegistryError(
                f"{name} has no version with the alias '{alias}': run `ecgops register` and "
                "`ecgops promote` first, or pass --model"
            )
    host = host or cfg.serving.host
    if not is_loopback(host):
        log.warning("serving on %s: reachable from other machines, without authentication", host)
    return uri, host, int(port or cfg.serving.port)


def start(
    cfg: Config,
    task: str | None = None,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
    log_file: Path | None = None,
) -> subprocess.Popen:
    """Start the scoring server in the background (its own process group).

    Args:
        cfg: configuration.
        task: serve this task's champion (when ``model`` is not given).
        model: model URI.
        host: bind address (default ``serving.host``, 127.0.0.1).
        port: port (default ``serving.port``).
        log_file: where the server's output goes (default: inherited).

    Returns:
        The server process; stop it with :func:`stop`.
    """
    uri, host, port = resolve(cfg, task, model, host, port)
    out = log_file.open("ab") if log_file else None
    try:
        return subprocess.Popen(
            serve_command(uri, host, port, cfg.serving.workers),
            env=serve_env(cfg),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()


def wait_ready(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen | None = None
) -> float:
    """Wait until ``GET /ping`` answers 200; returns the seconds waited.

    Raises:
        EcgopsError: the process exited or the server did not answer within ``timeout_s``.
    """
    start_t = time.monotonic()
    url = f"http://{host}:{port}/ping"
    while time.monotonic() - start_t < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise EcgopsError(f"model server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=PING_TIMEOUT_S) as resp:  # noqa: S310
                if resp.status == 200:
                    return time.monotonic() - start_t
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(PING_INTERVAL_S)
    raise EcgopsError(f"model server at {url} did not answer within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """Stop a server started by :func:`start` (its whole process group; SIGKILL after
    ``timeout_s``, as uvicorn may wait for idle keep-alive connections)."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


def invoke(host: str, port: int, payload: Any, timeout_s: float = 30.0) -> tuple[int, Any]:
    """POST a JSON payload to ``/invocations``; returns ``(status, parsed JSON or text)``."""
    body = json.dumps(payload).encode()
    req = urllib.request.Request(
        f"http://{host}:{port}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def serve(
    cfg: Config,
    task: str | None = None,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """Serve a model in the foreground until interrupted (``ecgops serve``).

    Args:
        cfg: configuration.
        task: serve this task's champion (when ``model`` is not given).
        model: model URI (``models:/...``, ``runs:/...``).
        host: bind address (default ``serving.host``: 127.0.0.1).
        port: port (default ``serving.port``).

    Returns:
        The server's exit code.
    """
    uri, host, port = resolve(cfg, task, model, host, port)
    cmd = serve_command(uri, host, port, cfg.serving.workers)
    print(f"serving {uri} on http://{host}:{port}/invocations (Ctrl+C stops)", file=sys.stderr)
    proc = subprocess.Popen(cmd, env=serve_env(cfg), start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        return 0
