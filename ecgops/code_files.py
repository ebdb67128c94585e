"""The code deps of the DVC stages: one JSON per stage with the md5 of each source it runs.

A stage's code is the import closure of its command's modules (:meth:`ecgops.stages.Stage.code`).
Listed file by file as DVC deps, it put ~40 entries per stage call into ``dvc.lock`` (4,000 of
its hashes, 460 of its 640 KB), a file DVC parses with ruamel's round-trip loader three times per
``dvc repro`` (~2 s each on 2 cores). Instead the ``params`` stage (``ecgops config
--code``) and the Prefect ``ingest`` flow write ``outputs/code/{stage}.json``: the stage's
``.py`` files and their md5, one dep per stage call. A code change alters the files of the
stages that run it and no others, so it reruns what listing the sources reran; the Prefect
cache keys hash the same files (:func:`ecgops.orchestration.caching.code_fingerprint`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from ecgops import paths as P
from ecgops.codegraph import PROJECT_DIR
from ecgops.io import write_json
from ecgops.paths import HasPaths
from ecgops.stages import STAGES, Stage


def source_files(paths: Iterable[str] = ()) -> list[Path]:
    """The ``.py`` files under source paths, sorted.

    Args:
        paths: files or folders relative to the code checkout (a stage's
            :meth:`~ecgops.stages.Stage.code`); empty: the whole ``ecgops`` package.
    """
    roots = [PROJECT_DIR / p for p in paths] or [PROJECT_DIR / "ecgops"]
    return sorted({f for r in roots for f in ([r] if r.is_file() else r.rglob("*.py"))})


def code_payload(paths: Iterable[str]) -> dict[str, str]:
    """``{relative path: md5}`` of the sources under ``paths`` (see :func:`source_files`)."""
    return {
        f.relative_to(PROJECT_DIR).as_posix(): hashlib.md5(f.read_bytes()).hexdigest()
        for f in source_files(paths)
    }


def coded_stages() -> list[Stage]:
    """The DVC stages that run ecgops modules (each gets a code file)."""
    return [st for st in STAGES if st.dvc and st.entry]


def write_code_files(cfg: HasPaths) -> list[Path]:
    """Write ``outputs/code/{stage}.json`` for every stage of :func:`coded_stages`.

    Args:
        cfg: the configuration (its ``paths.outputs``).

    Returns:
        The written files.
    """
    return [
        write_json({"code": code_payload(st.code())}, P.code_file(cfg, st.name))
        for st in coded_stages()
    ]
