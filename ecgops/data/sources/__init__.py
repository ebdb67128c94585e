"""Raw record layouts that feed the beat tables: one module per PhysioNet database.

Each source module has ``iter_records(cfg, folder, report)`` yielding one
:class:`RecordBeats` per usable record (beats, labels, ids, peak statistics) and counting
what it leaves out in a :class:`SourceReport`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecgops.data.beats import RecordPeakStats


@dataclass
class RecordBeats:
    """The beats of one record, ready for the beat table.

    Attributes:
        source: ``mitdb``, ``ptbxl``, ``ptbdb`` or a name of ``data.arrhythmia_sources``.
        record: record id (unique within its task: other arrhythmia sources' records are
            ``<source>/<record>``).
        patient: patient id (unique across sources of a task).
        beats: float32 array (n, beat_len).
        labels: int64 array (n,) of class indices.
        stats: the record's R-peak statistics.
        context: per beat (same rows), the R-peak position and RR context
            (``ecgops.schema.POSITION_COLUMNS + CONTEXT_COLUMNS``), or None (PTB).
    """

    source: str
    record: str
    patient: str
    beats: np.ndarray
    labels: np.ndarray
    stats: RecordPeakStats
    context: pd.DataFrame | None = None


@dataclass
class SourceReport:
    """What a source read and what it left out (for the build summary).

    Attributes:
        source: source name.
        folder: the folder it read.
        listed: records listed in the folder.
        used: records that gave beats.
        excluded: records left out, by reason.
        no_beats: records that gave no beats (logged and skipped).
        fallback_lead: records read on a fallback channel, with the lead used.
        duplicates: records left out because their beats repeat an earlier record's
            (record -> the earlier ``source/record``).
        leads: records read per lead name (arrhythmia sources).
    """

    source: str
    folder: Path
    listed: int = 0
    used: int = 0
    excluded: Counter = field(default_factory=Counter)
    no_beats: list[str] = field(default_factory=list)
    fallback_lead: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)
    leads: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        """JSON-ready view."""
        return {
            "folder": str(self.folder),
            "listed": self.listed,
            "used": self.used,
            "excluded": dict(sorted(self.excluded.items())),
            "no_beats": list(self.no_beats),
            "fallback_lead": dict(self.fallback_lead),
            "duplicates": dict(self.duplicates),
            "leads": dict(sorted(self.leads.items())),
        }


def read_records_file(folder: Path, pattern: str) -> list[str]:
    """Record names of a folder: its ``RECORDS`` file, else the headers matching ``pattern``.

    Args:
        folder: the database folder.
        pattern: glob for header files relative to ``folder`` (e.g. ``*.hea``).

    Returns:
        Record paths relative to ``folder`` without extension, in listed (or sorted) order.
    """
    listing = folder / "RECORDS"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        if names:
            return names
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.glob(pattern))


def cap(items: list, max_records: int | None) -> list:
    """The first ``max_records`` items (all when None)."""
    return list(items) if max_records is None else list(items)[:max_records]
