"""Shared test fixtures: smoke-profile configs whose every output lives in a temporary folder.

- ``cfg_smoke``: a fresh smoke config per test; its raw source is ``tests/fixtures/raw``
  (tiny real cuts, see ``scripts/make_fixtures.py``) and ``data/``, ``outputs/``, ``models/``
  and the MLflow store point into the test's ``tmp_path`` (nothing is built yet).
- ``cfg_smoke_factory``: the same with extra overrides, e.g.
  ``cfg_smoke_factory(data={"max_records": 2})``.
- ``smoke_data``: one config per session with the raw fixtures imported, both beat tables
  built and both splits written. Shared: treat its files as read-only. (The tables skip the
  Great Expectations run to keep the session fast; ``build_task`` and its validation are
  tested in ``tests/data``.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecgops.config import Config, deep_merge, load_config

pytest_plugins = ["fixtures_mlflow"]  # real MLflow server fixtures (tests/fixtures_mlflow.py)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
RAW_FIXTURES = FIXTURES / "raw"
KAGGLE_FIXTURES = FIXTURES / "kaggle"
PATH_KEYS = ("raw", "processed", "splits", "features", "outputs", "models")
ENV_OVERRIDES = ("ECGOPS_DATA_SOURCE", "ECGOPS_PROFILE", "ECGOPS_ROOT", "MLFLOW_TRACKING_URI")

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def smoke_config(workdir: Path, **overrides: Any) -> Config:
    """A smoke-profile config writing under ``workdir`` and reading the raw fixtures.

    Args:
        workdir: folder for ``raw``, ``processed``, ``splits``, ``features``, ``outputs``,
            ``models``, the MLflow database and artifacts.
        **overrides: top-level sections merged last (e.g. ``data={"max_records": 2}``).

    Returns:
        The validated config (root: the project, so ``params.yaml`` is the real one).
    """
    base: dict[str, Any] = {
        "paths": {
            "raw_source": str(RAW_FIXTURES),
            "dvc_remote": str(workdir / "dvc-remote"),
            **{key: str(workdir / key) for key in PATH_KEYS},
        },
        "tracking": {
            "uri": f"sqlite:///{workdir / 'mlflow.db'}",
            "artifact_root": (workdir / "mlartifacts").as_uri(),
        },
    }
    return load_config(root=ROOT, profile="smoke", overrides=deep_merge(base, overrides))


def tables_config(tables: Config, workdir: Path, **overrides: Any) -> Config:
    """:func:`smoke_config` reading the beat tables and splits that ``tables`` built.

    Args:
        tables: the config whose ``processed`` and ``splits`` folders hold the shared tables.
        workdir: folder for everything written (outputs, models, MLflow).
        **overrides: as for :func:`smoke_config` (``paths`` entries merged over the tables').
    """
    paths = {
        "processed": str(tables.path("processed")),
        "splits": str(tables.path("splits")),
        **overrides.pop("paths", {}),
    }
    return smoke_config(workdir, paths=paths, **overrides)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove environment variables that would override the test config."""
    for name in ENV_OVERRIDES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cfg_smoke(tmp_path: Path, clean_env: None) -> Config:
    """Smoke config for one test: raw fixtures as the source, outputs under ``tmp_path``."""
    return smoke_config(tmp_path)


@pytest.fixture
def cfg_smoke_factory(tmp_path: Path, clean_env: None) -> Callable[..., Config]:
    """Build smoke configs with overrides, all writing under the test's ``tmp_path``."""

    def make(**overrides: Any) -> Config:
        return smoke_config(tmp_path, **overrides)

    return make


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """Raw fixtures imported, both tables built and split, once per session."""
    from ecgops.data.build import collect, save_table
    from ecgops.data.raw import import_raw
    from ecgops.data.splits import make_splits

    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_OVERRIDES:
            mp.delenv(name, raising=False)
        cfg = smoke_config(tmp_path_factory.mktemp("smoke"))
        import_raw(cfg)
        for task in ("mitbih", "ptb"):
            save_table(cfg, task, *collect(cfg, task))
            make_splits(cfg, task)
        yield cfg
