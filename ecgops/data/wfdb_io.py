"""Read one lead of a WFDB record, resample it, and read reference beat annotations.

Every failure (missing or empty .hea/.dat, a .dat shorter than its header says, a lead that
the record does not have) becomes a :class:`~ecgops.errors.DataError` naming the file, never
a traceback from inside wfdb.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgops.errors import DataError

if TYPE_CHECKING:
    import wfdb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lead:
    """One lead of a record, in physical units at its original sampling rate."""

    record: Path
    name: str
    channel: int
    fs: float
    signal: np.ndarray
    comments: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Length of the signal in seconds."""
        return len(self.signal) / self.fs


@dataclass(frozen=True)
class Annotations:
    """Reference annotations of a record: sample indices (at ``fs``) and symbols."""

    sample: np.ndarray
    symbol: np.ndarray
    fs: float


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(path, f"{what} not found")
    if path.stat().st_size == 0:
        raise DataError(path, f"{what} is empty")


def read_header(record: str | Path) -> wfdb.Record:
    """Read a record's header (``<record>.hea``).

    Args:
        record: path of the record without extension.

    Returns:
        The ``wfdb.Record`` header object (no signal).

    Raises:
        DataError: the header is missing, empty or not a WFDB header.
    """
    import wfdb

    record = Path(record)
    hea = record.with_name(record.name + ".hea")
    _check_file(hea, "WFDB header")
    try:
        return wfdb.rdheader(str(record))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers
        raise DataError(hea, f"not a readable WFDB header: {exc}") from exc


def pick_channel(sig_names: list[str], lead: str, fallback: int | None, where: Path) -> int:
    """Index of the signal named ``lead`` (case-insensitive), else ``fallback``.

    Args:
        sig_names: the header's signal names.
        lead: wanted signal name, e.g. ``MLII`` or ``ii``.
        fallback: channel to use when the lead is absent (logged); None = error.
        where: the header file, for messages.

    Returns:
        The channel index.

    Raises:
        DataError: the lead is absent and there is no usable fallback.
    """
    wanted = lead.strip().lower()
    for i, name in enumerate(sig_names):
        if name.strip().lower() == wanted:
            return i
    if fallback is not None and 0 <= fallback < len(sig_names):
        log.warning(
            "%s: no lead %s; using channel %d (%s)", where, lead, fallback, sig_names[fallback]
        )
        return fallback
    raise DataError(where, f"no lead {lead!r} in the record (signals: {', '.join(sig_names)})")


def read_lead(record: str | Path, lead: str, fallback_channel: int | None = None) -> Lead:
    """Read one lead of a WFDB record in physical units.

    Args:
        record: path of the record without extension (``.../100``).
        lead: signal name to pick, case-insensitively.
        fallback_channel: channel used (and logged) when the record has no such lead.

    Returns:
        The :class:`Lead` at the record's own sampling rate.

    Raises:
        DataError: missing/empty/bad header or .dat, truncated .dat, unknown lead, NaN samples.
    """
    import wfdb

    record = Path(record)
    header = read_header(record)
    hea = record.with_name(record.name + ".hea")
    channel = pick_channel(list(header.sig_name or []), lead, fallback_channel, hea)
    dat = record.with_name(header.file_name[channel])
    _check_file(dat, "WFDB signal file")
    expected = int(header.sig_len or 0)
    try:
        rec = wfdb.rdrecord(str(record), channels=[channel], physical=True)
    except Exception as exc:  # short files surface as broadcast/reshape errors
        raise DataError(
            dat, f"unreadable or truncated signal file (header says {expected} samples): {exc}"
        ) from exc
    signal = np.asarray(rec.p_signal[:, 0], dtype=np.float64)
    if expected and len(signal) < expected:
        raise DataError(dat, f"truncated: {len(signal)} of {expected} samples")
    if not np.isfinite(signal).all():
        bad = int((~np.isfinite(signal)).sum())
        raise DataError(dat, f"lead {header.sig_name[channel]} has {bad} missing (NaN) samples")
    return Lead(
        record=record,
        name=header.sig_name[channel],
        channel=channel,
        fs=float(header.fs),
        signal=signal,
        comments=list(header.comments or []),
    )


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample with a polyphase filter at the rational factor ``fs_out / fs_in``.

    Args:
        signal: 1-d signal.
        fs_in: its sampling rate (Hz).
        fs_out: wanted sampling rate (Hz).

    Returns:
        The resampled signal (``ceil(len * fs_out / fs_in)`` samples).
    """
    from scipy.signal import resample_poly

    ratio = Fraction(fs_out).limit_denominator(10_000) / Fraction(fs_in).limit_denominator(10_000)
    if ratio == 1:
        return np.asarray(signal, dtype=np.float64)
    return resample_poly(signal, ratio.numerator, ratio.denominator)


def read_annotations(record: str | Path, extension: str) -> Annotations:
    """Read a record's annotation file (e.g. ``.atr``).

    Args:
        record: path of the record without extension.
        extension: annotator name, e.g. ``atr``.

    Returns:
        The :class:`Annotations` (sample indices at the record's rate, symbols).

    Raises:
        DataError: the annotation file is missing, empty or unreadable.
    """
    import wfdb

    record = Path(record)
    path = record.with_name(f"{record.name}.{extension}")
    _check_file(path, "annotation file")
    try:
        ann = wfdb.rdann(str(record), extension)
    except Exception as exc:
        raise DataError(path, f"unreadable annotation file: {exc}") from exc
    return Annotations(
        sample=np.asarray(ann.sample, dtype=np.int64),
        symbol=np.asarray(ann.symbol, dtype=object),
        fs=float(ann.fs) if ann.fs else float("nan"),
    )


def to_rate(sample: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Map sample indices from ``fs_in`` to ``fs_out`` (rounded to the nearest sample)."""
    return np.rint(np.asarray(sample, dtype=np.float64) * fs_out / fs_in).astype(np.int64)
