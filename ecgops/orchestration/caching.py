"""Task caching keyed on what a task really depends on, taken from the stage table.

A cache key (:func:`cache_key`) covers the call's arguments, the ``params.yaml`` sections the
stage reads (exactly the payloads of the DVC stage's params files,
:func:`ecgops.param_files.call_params`: a section's common part plus the call's model's own
subsection, so a change of ``classical.lgbm`` changes the lgbm calls' keys only), the md5 of
the files it reads (:func:`ecgops.versions.file_md5`, memoised) and the md5 of the ecgops code
it runs; :class:`InputsAndFiles` is the Prefect cache policy built
from one entry of :data:`ecgops.stages.STAGES`. Results persist under
``<project>/.prefect/results`` (JSON, no pickles), so a rerun skips finished work, and an entry
whose output files are gone is forgotten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy

from ecgops.code_files import source_files
from ecgops.codegraph import PROJECT_DIR
from ecgops.config import Config
from ecgops.model_params import ModelParams
from ecgops.param_files import call_params
from ecgops.stages import stage
from ecgops.versions import file_md5

RESULTS_DIR = ".prefect/results"
"""Persisted task results (the cache), relative to the project root."""
RESULT_SERIALIZER = "json"
"""Results are JSON: nothing is unpickled from the cache."""

PathsFn = Callable[[Config, Mapping[str, Any]], Iterable[Path]]


def results_dir(cfg: Config) -> Path:
    """Where task results (the cache) persist: ``<project>/.prefect/results``."""
    return cfg.root / RESULTS_DIR


@lru_cache(maxsize=64)
def code_fingerprint(paths: tuple[str, ...] = ()) -> str:
    """md5 over ecgops sources: a code change invalidates the cache of the tasks it affects.

    Args:
        paths: source files or folders relative to the code checkout (a stage's
            :meth:`~ecgops.stages.Stage.code`, e.g. ``("ecgops/data/build.py",)``); their
            ``.py`` files count. Empty: the whole ``ecgops`` package.

    Returns:
        The hex digest over the files' relative names and bytes.
    """
    h = hashlib.md5()
    for source in source_files(paths):
        h.update(str(source.relative_to(PROJECT_DIR)).encode())
        h.update(source.read_bytes())
    return h.hexdigest()


def cache_key(
    name: str,
    cfg: Config,
    inputs: Mapping[str, Any],
    sections: Sequence[str] = (),
    files: Iterable[Path] = (),
    code: Sequence[str] = (),
    model_params: Sequence[ModelParams] = (),
) -> str:
    """A cache key for one task call: same key, same work.

    Args:
        name: the task's name.
        cfg: the configuration of the call.
        inputs: the call's other arguments (JSON-able values; :class:`Config` ones skipped).
        sections: ``params.yaml`` sections the task reads (e.g. ``("classical", "splits")``).
        files: files the task reads; their md5 enters the key.
        code: source paths the task runs (see :func:`code_fingerprint`).
        model_params: split subsections the task reads its model's entry of (``inputs``
            name the model; see :class:`ecgops.stages.ModelParams`).

    Returns:
        A hex digest over the name, inputs, profile, seed, project root, MLflow tracking URI,
        the params files' payloads, the files' md5 and the code fingerprint.
    """
    payload = {
        "task": name,
        "inputs": {k: v for k, v in sorted(inputs.items()) if not isinstance(v, Config)},
        "profile": cfg.profile,
        "seed": cfg.seed,
        "root": str(cfg.root),
        "tracking_uri": cfg.tracking_uri,
        "params": call_params(cfg, sections, model_params, inputs),
        "files": {_rel(cfg, f): file_md5(f) for f in sorted(files, key=str)},
        "code": code_fingerprint(tuple(sorted(code))),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.md5(text.encode()).hexdigest()


def _rel(cfg: Config, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(cfg.root.resolve()))
    except ValueError:
        return str(path)


@dataclass
class InputsAndFiles(CachePolicy):
    """Prefect cache policy: inputs + params sections + md5 of the files read + code.

    Build it from the stage table with :meth:`for_stage`.

    Attributes:
        sections: ``params.yaml`` sections the task reads.
        code: source paths the task runs (see :func:`code_fingerprint`).
        model_params: subsections keyed by the call's model (its model's entry only).
        reads: ``(cfg, inputs) -> paths`` of the files the task reads.
        writes: ``(cfg, inputs) -> paths`` the task writes; when one is missing, the cached
            entry is forgotten so the task runs again (a deleted output is rebuilt).
    """

    sections: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    model_params: tuple[ModelParams, ...] = ()
    reads: PathsFn | None = None
    writes: PathsFn | None = None

    @classmethod
    def for_stage(cls, name: str) -> InputsAndFiles:
        """The policy of a stage of :data:`ecgops.stages.STAGES` (by stage or task name).

        Args:
            name: e.g. ``train-classical`` (the task) or ``classical-ptb`` (a DVC stage).

        Returns:
            The stage's sections, model params, code, reads and writes as a cache policy.
        """
        entry = stage(name)
        return cls(
            sections=entry.sections,
            code=entry.code(),
            model_params=entry.model_params,
            reads=entry.files_read,
            writes=entry.files_written,
        )

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The cache key of a task call (None, i.e. no caching, without a Config input)."""
        cfg = next((v for v in inputs.values() if isinstance(v, Config)), None)
        if cfg is None:
            return None
        files = list(self.reads(cfg, inputs)) if self.reads else []
        key = cache_key(
            task_ctx.task.name, cfg, inputs, self.sections, files, self.code, self.model_params
        )
        if self.writes and not all(Path(p).exists() for p in self.writes(cfg, inputs)):
            _forget(task_ctx, key)
        return key


def _forget(task_ctx: Any, key: str) -> None:
    """Delete a cached record from local result storage (its outputs are gone)."""
    store = getattr(task_ctx, "result_store", None)
    for storage in (
        getattr(store, "metadata_storage", None),
        getattr(store, "result_storage", None),
    ):
        basepath = getattr(storage, "basepath", None)
        if basepath:
            Path(basepath, key).unlink(missing_ok=True)
