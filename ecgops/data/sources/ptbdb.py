"""PTB Diagnostic ECG Database (``patientNNN/sNNNN_re``) to healthy-vs-MI beats.

The study's own PTB source. The label comes from the header comment
``Reason for admission: ...`` (``data.ptbdb.mi_reason`` -> 1, ``healthy_reason`` -> 0, any
other reason is excluded); lead ``ii`` (1000 Hz), R-peaks detected as for PTB-XL; patient id
``ptbdb-patientNNN``, record id ``patientNNN/sNNNN_re``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from ecgops.config import Config
from ecgops.data import wfdb_io
from ecgops.data.sources import RecordBeats, SourceReport, cap, read_records_file
from ecgops.data.sources.ptbxl import HEALTHY, MI, detected_beats
from ecgops.errors import DataError

log = logging.getLogger(__name__)

SOURCE = "ptbdb"
REASON_KEY = "reason for admission"


def admission_reason(comments: list[str]) -> str | None:
    """The ``Reason for admission`` of a PTB header's comments, or None when absent."""
    for line in comments:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == REASON_KEY:
            return value.strip()
    return None


def reason_label(reason: str | None, mi_reason: str, healthy_reason: str) -> int | None:
    """1 for myocardial infarction, 0 for healthy control, None (excluded) otherwise."""
    if reason is None:
        return None
    r = reason.strip().lower()
    if r == mi_reason.lower():
        return MI
    if r == healthy_reason.lower():
        return HEALTHY
    return None


def iter_records(cfg: Config, folder: Path, report: SourceReport) -> Iterator[RecordBeats]:
    """Yield the beats of every MI or healthy-control record of a PTB Diagnostic folder.

    Args:
        cfg: configuration.
        folder: the folder holding ``patientNNN/`` (e.g. ``ptbdb-sample``).
        report: filled with what was read and left out.

    Yields:
        One :class:`RecordBeats` per record.

    Raises:
        DataError: a header is unreadable or has no ``Reason for admission``.
    """
    db = cfg.data.ptbdb
    names = read_records_file(folder, "patient*/*.hea")
    report.listed = len(names)
    chosen = []
    for name in names:
        path = folder / name
        header = wfdb_io.read_header(path)
        reason = admission_reason(list(header.comments or []))
        if reason is None:
            raise DataError(
                path.with_name(path.name + ".hea"), "no 'Reason for admission' header comment"
            )
        label = reason_label(reason, db.mi_reason, db.healthy_reason)
        if label is None:
            report.excluded["other_diagnosis"] += 1
            log.debug("%s: reason %r excluded", name, reason)
            continue
        chosen.append((name, label))
    capped = cap(chosen, cfg.data.max_records)
    if len(capped) < len(chosen):
        report.excluded["max_records"] += len(chosen) - len(capped)
    for name, label in capped:
        patient = f"{SOURCE}-{Path(name).parts[0]}" if "/" in name else f"{SOURCE}-{name}"
        yield detected_beats(cfg, folder / name, db.lead, SOURCE, name, patient, label)
