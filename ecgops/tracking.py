"""MLflow set-up and provenance: one experiment per task, every run tagged for rebuilding it.

Every run records the git commit, the DVC data version (md5 of the task's beat table, the same
hash DVC stores), the split version (md5 of its split assignments), the split scheme, the
profile, the params and the versions of key packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgops.config import Config
from ecgops.errors import TrackingUnavailable

if TYPE_CHECKING:
    import mlflow

KEY_PACKAGES = (
    "ecgops",
    "numpy",
    "pandas",
    "scikit-learn",
    "imbalanced-learn",
    "lightgbm",
    "torch",
    "tsfresh",
    "mlflow",
    "prefect",
    "dvc",
    "great-expectations",
    "wfdb",
)
# Fail fast instead of hanging when a remote tracking server is down.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
HEALTH_TIMEOUT_S = 5.0


def git_commit(root: Path) -> str:
    """The current git commit of the project (with ``-dirty`` when the tree has changes)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def data_version(cfg: Config, task: str) -> str:
    """The DVC data version of a task: md5 of its processed beat table ('missing' if absent).

    One memoised hash per file version (:func:`ecgops.versions.data_version`).
    """
    from ecgops.versions import data_version as table_version

    return table_version(cfg, task)


def split_version(cfg: Config, task: str) -> str:
    """The split version of a task: md5 of its split assignments ('missing' if absent).

    Runs of the same data version and split version were trained, validated and tested on the
    same rows, so their validation metrics compare (the registry ranks only such runs).
    """
    from ecgops.paths import split_table
    from ecgops.versions import file_md5

    return file_md5(split_table(cfg, task))


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine a run's results."""
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def provenance_tags(cfg: Config, task: str, scheme: str | None = None) -> dict[str, str]:
    """Tags that make a run rebuildable: commit, data version, profile, split, packages."""
    tags = {
        "git_commit": git_commit(cfg.root),
        "data_version": data_version(cfg, task),
        "split_version": split_version(cfg, task),
        "profile": cfg.profile,
        "task": task,
        "seed": str(cfg.seed),
    }
    if scheme:
        tags["split_scheme"] = scheme
    tags.update({f"pkg.{k}": v for k, v in package_versions().items()})
    tags.update(_prefect_tags())
    return tags


def _prefect_tags() -> dict[str, str]:
    """Link to the Prefect flow run when called inside one (tags both ways)."""
    if "prefect" not in sys.modules:
        return {}  # not inside a flow run; don't pay prefect's import
    try:
        from prefect.runtime import flow_run
    except ImportError:  # pragma: no cover - prefect is a dependency
        return {}
    try:
        run_id = flow_run.get_id()
    except Exception:  # noqa: BLE001 - outside a flow run prefect may raise
        return {}
    if not run_id:
        return {}
    return {"prefect_flow_run_id": str(run_id), "prefect_flow_name": str(flow_run.get_flow_name())}


def check_reachable(uri: str) -> None:
    """Raise :class:`TrackingUnavailable` quickly when an HTTP tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as resp:  # noqa: S310
            if resp.status >= 500:
                raise TrackingUnavailable(f"MLflow server at {uri} is unhealthy ({resp.status})")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise TrackingUnavailable(
            f"MLflow tracking server at {uri} is unreachable ({exc}); start it or set "
            "MLFLOW_TRACKING_URI / tracking.uri in params.yaml"
        ) from exc


def configure(cfg: Config) -> str:
    """Point MLflow at the configured tracking URI (checked reachable) and return it."""
    import mlflow

    for key, value in HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri = cfg.tracking_uri
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(cfg: Config, task: str) -> str:
    """Create (if needed) and return the id of the task's experiment."""
    import mlflow

    name = cfg.experiment_name(task)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=_artifact_location(cfg, name))
    except Exception:  # noqa: BLE001 - a concurrent run may have created it first
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _artifact_location(cfg: Config, name: str) -> str | None:
    if cfg.tracking_uri.startswith(("http://", "https://")):
        return None  # the server decides (proxied artifacts)
    return f"{cfg.artifact_root.rstrip('/')}/{name}"


CONFIG_TAG = "ecgops.config"
"""Run tag naming the trained configuration without its split scheme (``lgbm-raw``): the same
configuration trained on another scheme has the same value."""


def config_name(run_name: str, scheme: str | None) -> str:
    """``lgbm-raw-beat`` -> ``lgbm-raw`` (the run name without its ``-{scheme}`` suffix)."""
    return run_name.removesuffix(f"-{scheme}") if scheme else run_name


@contextmanager
def start_run(
    cfg: Config,
    task: str,
    run_name: str,
    scheme: str | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start an MLflow run in the task's experiment with provenance tags and params.

    Args:
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        run_name: a readable name, e.g. ``lgbm-raw-beat``.
        scheme: split scheme, recorded as a tag.
        params: flat params to log (values stringified by MLflow).
        tags: extra tags.

    Yields:
        The active MLflow run.
    """
    import mlflow

    configure(cfg)
    experiment_id = ensure_experiment(cfg, task)
    all_tags = provenance_tags(cfg, task, scheme)
    all_tags[CONFIG_TAG] = config_name(run_name, scheme)
    all_tags.update(tags or {})
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        if params:
            mlflow.log_params({k: _short(v) for k, v in flatten(params).items()})
        yield run


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts with dotted keys."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _short(value: Any, limit: int = 6000) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
