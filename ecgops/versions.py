"""Content versions of the pipeline's files: one memoised md5, hashed once per file version.

A file's md5 is cached per (resolved path, size, mtime), so a pipeline that asks for the
version of the same beat table from every task (cache keys, run tags) reads it once; a file
rewritten in place gets a new mtime and is hashed again.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from ecgops.config import Config
from ecgops.paths import beat_table

MISSING = "missing"
"""The version of a file that does not exist."""
_BLOCK = 1 << 20
_MEMO: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (:data:`MISSING` when absent), memoised per file version.

    A directory hashes its files' relative names and md5s, in sorted order.

    Args:
        path: a file or directory.

    Returns:
        The hex digest.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.md5()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{child.relative_to(path)}={file_md5(child)};".encode())
        return h.hexdigest()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return MISSING
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        known = _MEMO.get(memo)
    if known is None:
        h = hashlib.md5()
        with path.open("rb") as fh:
            while block := fh.read(_BLOCK):
                h.update(block)
        known = h.hexdigest()
        with _LOCK:
            _MEMO[memo] = known
    return known


def data_version(cfg: Config, task: str) -> str:
    """The data version of a task: the md5 of its beat table (``data/processed/{task}.parquet``).

    Args:
        cfg: configuration (where the table lives).
        task: ``ptb`` or ``mitbih``.

    Returns:
        The hex digest, or :data:`MISSING` before the table is built.
    """
    return file_md5(beat_table(cfg, task))
