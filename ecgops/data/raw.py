"""Copy the raw PhysioNet folders into the project (``data/raw``), verifying SHA256 sums.

Every folder of ``data.raw_folders`` present under ``cfg.raw_source`` is copied. Files listed
in its ``SHA256SUMS.txt`` (``<sha256>  <relative path>`` lines, as ``sha256sum`` writes them)
are all verified, in every folder, before anything is copied, so a bad source changes
nothing; files already identical in the copy are not copied again, files the source no longer
has are deleted from it (DVC keeps the copy between runs: ``persist``); each file is replaced
atomically. Files the list
does not name (``RECORDS``, licences, CSVs) are copied as they are. A folder without
``SHA256SUMS.txt`` is an error when ``data.require_checksums`` is true; otherwise it is copied
with a warning and a ``SHA256SUMS.txt`` computed from the copy is written beside it, so later
imports and DVC have a list to check against.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from ecgops.config import Config
from ecgops.errors import DataError
from ecgops.io import atomic_path, write_text

log = logging.getLogger(__name__)

CHECKSUMS = "SHA256SUMS.txt"
CHUNK = 1 << 20


def sha256(path: Path) -> str:
    """Hex SHA256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_checksums(path: Path) -> dict[str, str]:
    """Parse a ``SHA256SUMS.txt``: relative path -> hex digest.

    Args:
        path: the checksum file.

    Returns:
        The listed files and their digests.

    Raises:
        DataError: a line is not ``<64 hex digits> <path>``, or the file lists nothing.
    """
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise DataError(path, f"line {number} is not '<sha256>  <file>': {line.strip()!r}")
        out[name] = digest.lower()
    if not out:
        raise DataError(path, "lists no files")
    return out


def format_checksums(sums: dict[str, str]) -> str:
    """``sha256sum``-style text of ``{relative path: digest}``, sorted by path."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def verify_folder(folder: Path, require: bool) -> dict[str, str] | None:
    """Check every file listed in a folder's ``SHA256SUMS.txt``.

    Args:
        folder: the source folder.
        require: a missing ``SHA256SUMS.txt`` is an error (else None is returned).

    Returns:
        The verified ``{relative path: digest}``, or None when there is no list.

    Raises:
        DataError: missing list (when required), a listed file missing, or a digest mismatch.
    """
    listing = folder / CHECKSUMS
    if not listing.is_file():
        if require:
            raise DataError(listing, "missing: cannot verify the raw records")
        log.warning("%s: no %s; copying unverified and writing one", folder, CHECKSUMS)
        return None
    sums = read_checksums(listing)
    for name, digest in sums.items():
        path = folder / name
        if not path.is_file():
            raise DataError(path, f"listed in {listing} but missing")
        actual = sha256(path)
        if actual != digest:
            raise DataError(
                path, f"SHA256 mismatch: {listing} says {digest}, the file has {actual}"
            )
    return sums


def copy_file(src: Path, dst: Path, digest: str | None = None) -> bool:
    """Copy ``src`` to ``dst`` atomically unless ``dst`` already has the same content.

    Args:
        src: source file.
        dst: destination file.
        digest: the source's known SHA256 (computed when None).

    Returns:
        True when the file was copied, False when it was already identical.
    """
    same_size = dst.is_file() and dst.stat().st_size == src.stat().st_size
    if same_size and sha256(dst) == (digest or sha256(src)):
        return False
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return True


def copy_folder(src: Path, dst: Path, sums: dict[str, str] | None) -> dict[str, int]:
    """Copy one verified raw folder.

    Args:
        src: the source folder (e.g. ``.../shared/data/mitdb``).
        dst: its copy (e.g. ``data/raw/mitdb``).
        sums: its verified checksums (:func:`verify_folder`), or None when it has no list.

    Returns:
        ``{"copied": n, "unchanged": m, "removed": r, "verified": k}``: ``removed`` counts
        the files of the copy that the source no longer has (deleted, so the copy mirrors it).
    """
    files = sorted(p for p in src.rglob("*") if p.is_file())
    copied = unchanged = 0
    for path in files:
        rel = path.relative_to(src).as_posix()
        if copy_file(path, dst / rel, (sums or {}).get(rel)):
            copied += 1
        else:
            unchanged += 1
    if sums is None:
        computed = {p.relative_to(src).as_posix(): sha256(dst / p.relative_to(src)) for p in files}
        write_text(format_checksums(computed), dst / CHECKSUMS)
    keep = {p.relative_to(src) for p in files} | {Path(CHECKSUMS)}
    stale = [p for p in dst.rglob("*") if p.is_file() and p.relative_to(dst) not in keep]
    for path in stale:
        path.unlink()
    return {
        "copied": copied,
        "unchanged": unchanged,
        "removed": len(stale),
        "verified": len(sums or {}),
    }


def import_raw(cfg: Config) -> Path:
    """Copy the raw folders present under ``cfg.raw_source`` into ``cfg.path("raw")``.

    Args:
        cfg: configuration (``paths.raw_source`` / ``$ECGOPS_DATA_SOURCE``,
            ``data.raw_folders``, ``data.require_checksums``).

    Returns:
        The raw directory.

    Raises:
        DataError: the source directory is missing, holds none of the folders, or a folder
            fails its checksum verification.
    """
    source = cfg.raw_source
    target = cfg.path("raw")
    if not source.is_dir():
        raise DataError(
            source,
            "raw data source not found; set paths.raw_source or ECGOPS_DATA_SOURCE, "
            "or run `ecgops data fetch`",
        )
    folders = sorted(set(cfg.data.raw_folders.values()))
    present = [f for f in folders if (source / f).is_dir()]
    if not present:
        raise DataError(source, f"none of the raw folders {', '.join(folders)} is there")
    verified = {f: verify_folder(source / f, cfg.data.require_checksums) for f in present}
    for name, sums in verified.items():
        result = copy_folder(source / name, target / name, sums)
        log.info("%s: %s", name, result)
    return target


PHYSIONET = {"mitdb": "mitdb", "ptbxl": "ptb-xl", "ptbdb": "ptbdb"}
PTBXL_FILES = ["ptbxl_database.csv", "scp_statements.csv"]
PTBXL_PREFIX = "records500/"


def fetch_raw(cfg: Config, dest: Path | None = None, sources: list[str] | None = None) -> Path:
    """Download the databases from PhysioNet with ``wfdb`` (needs the internet).

    MIT-BIH and PTB Diagnostic are downloaded whole; PTB-XL only its 500 Hz records and its
    two metadata CSVs. Each folder gets a ``SHA256SUMS.txt`` of what was downloaded, so
    :func:`import_raw` can verify the copy.

    Args:
        cfg: configuration (``data.raw_folders``).
        dest: where to put the folders (default ``cfg.raw_source``).
        sources: which of ``mitdb``, ``ptbxl``, ``ptbdb`` (default all).

    Returns:
        The destination directory.

    Raises:
        DataError: a download failed (no connection, unknown database).
    """
    import wfdb

    dest = Path(dest) if dest else cfg.raw_source
    for source in sources or list(PHYSIONET):
        if source not in PHYSIONET:
            raise DataError(None, f"unknown source {source!r}; choose from {', '.join(PHYSIONET)}")
        folder = dest / cfg.data.raw_folders[source]
        db = PHYSIONET[source]
        log.info("downloading %s into %s", db, folder)
        try:
            if source == "ptbxl":
                records = [r for r in wfdb.io.get_record_list(db) if r.startswith(PTBXL_PREFIX)]
                wfdb.dl_database(db, str(folder), records=records, annotators=None)
                wfdb.io.dl_files(db, str(folder), PTBXL_FILES)
            else:
                wfdb.dl_database(db, str(folder))
        except Exception as exc:  # requests/HTTP errors of many kinds
            raise DataError(folder, f"download of PhysioNet {db!r} failed: {exc}") from exc
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix in {".dat", ".hea", ".atr"}
        )
        sums = {p.relative_to(folder).as_posix(): sha256(p) for p in files}
        write_text(format_checksums(sums), folder / CHECKSUMS)
    return dest
