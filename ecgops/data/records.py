"""One WFDB record (any of the three layouts) to beats, as the task's beat table makes them.

``ecgops predict --record`` diagnoses records that are not in any beat table. Their beats go
through the very functions ``ecgops data build`` uses (:mod:`ecgops.data.sources`), so a record
predicted here gives the beats it would give in the table:

- ``mitbih`` with reference annotations: :func:`ecgops.data.sources.mitdb.record_beats`
  (MLII, else ``data.mitbih.fallback_channel``; annotated R-peaks);
- anything else: :func:`ecgops.data.sources.ptbxl.detected_beats` (the PTB R-peak detector)
  on the lead found by name (:func:`lead_candidates`), without the build's independent
  heart-rate reference (a statistic of the table's summary, not needed for a prediction);
- a multi-lead model's beats: :func:`record_lead_beats`, the ``ptb12`` table's cut
  (:func:`ecgops.data.multilead.record_lead_beats`) of the model's leads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgops.config import Config
from ecgops.data import wfdb_io
from ecgops.data.sources import RecordBeats, SourceReport
from ecgops.schema import BEAT_LEN

SOURCE = "record"
"""Source name of the beats of a record given for prediction."""
ANNOTATED, DETECTED = "annotated R-peaks", "detected R-peaks"


def lead_candidates(cfg: Config, task: str) -> list[str]:
    """Lead names tried in order (case-insensitive): the task's own lead first.

    PTB uses lead II (``II`` in PTB-XL, ``ii`` in PTB Diagnostic); MIT-BIH uses MLII, a
    modified lead II, so each task falls back on the other's name.

    Args:
        cfg: configuration (``data`` section).
        task: ``ptb`` or ``mitbih``.

    Returns:
        Distinct lead names, the task's first.
    """
    ordered = (
        [cfg.data.ptbxl.lead, cfg.data.ptbdb.lead, cfg.data.mitbih.lead]
        if task == "ptb"
        else [cfg.data.mitbih.lead, cfg.data.ptbxl.lead, cfg.data.ptbdb.lead]
    )
    out: list[str] = []
    for name in ordered:
        if name.lower() not in {o.lower() for o in out}:
            out.append(name)
    return out


def _no_stats_config(cfg: Config) -> Config:
    """``cfg`` without the independent heart-rate reference (unused by a prediction)."""
    stats = cfg.data.stats.model_copy(update={"hr_reference": "none"})
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"stats": stats})})


def _annotated(cfg: Config, path: Path) -> tuple[RecordBeats, str]:
    from ecgops.data.sources import mitdb

    report = SourceReport(source=mitdb.SOURCE, folder=path.parent)
    beats = mitdb.record_beats(cfg, path, report)
    return beats, report.fallback_lead.get(path.name, cfg.data.mitbih.lead)


def record_beats(cfg: Config, task: str, path: str | Path) -> tuple[np.ndarray, str]:
    """Beats of one WFDB record, extracted as for the task's beat table.

    Args:
        cfg: configuration (``data`` section).
        task: ``ptb`` or ``mitbih``.
        path: record path without extension.

    Returns:
        ``(beats, note)``: float32 (n, 187) (n may be 0) and what was used, or why no beat.

    Raises:
        DataError: the record's files are missing or unreadable.
    """
    from ecgops.data.sources import ptbxl

    path = Path(path)
    header = wfdb_io.read_header(path)
    signal_names = [str(s) for s in (header.sig_name or [])]
    ann_file = path.with_name(f"{path.name}.{cfg.data.mitbih.annotator}")
    if task == "mitbih" and ann_file.is_file():
        found, lead, how = *_annotated(cfg, path), ANNOTATED
    else:
        lower = [s.strip().lower() for s in signal_names]
        lead = next((c for c in lead_candidates(cfg, task) if c.lower() in lower), None)
        fallback = cfg.data.mitbih.fallback_channel
        if lead is None and task == "mitbih" and 0 <= fallback < len(signal_names):
            lead = signal_names[fallback]
        if lead is None:
            wanted = "/".join(lead_candidates(cfg, task))
            return _no_beats(f"no lead {wanted} (signals: {', '.join(signal_names) or 'none'})")
        found = ptbxl.detected_beats(_no_stats_config(cfg), path, lead, SOURCE, path.name, "", 0)
        how = DETECTED
    if len(found.beats) == 0:
        return _no_beats(
            f"no usable beat in lead {lead} ({found.stats.duration_s:g} s in windows of "
            f"{cfg.data.window_s:g} s, each flat or with fewer than "
            f"{cfg.data.min_beats_per_window} R-peaks; {how})"
        )
    return found.beats.astype(np.float32), f"{len(found.beats)} beats, lead {lead}, {how}"


def _no_beats(note: str) -> tuple[np.ndarray, str]:
    return np.zeros((0, BEAT_LEN), dtype=np.float32), note


def record_leads(path: str | Path) -> list[str]:
    """The signal names of a record's header (no signal is read).

    Raises:
        DataError: missing or unreadable header.
    """
    return [str(s) for s in (wfdb_io.read_header(Path(path)).sig_name or [])]


def has_leads(path: str | Path, leads: list[str]) -> bool:
    """Whether a record has every one of ``leads`` (by name, any case)."""
    from ecgops.data.multilead import match_leads

    return not match_leads(record_leads(path), leads)[1]


def record_lead_beats(cfg: Config, path: str | Path, leads: list[str]) -> tuple[np.ndarray, str]:
    """Multi-lead beats of one record, cut as for the ``ptb12`` table (shared R-peaks).

    Args:
        cfg: configuration (``data``, ``rpeaks``, ``multilead``).
        path: record path without extension (PTB-XL or PTB Diagnostic layout).
        leads: the model's leads, in its order.

    Returns:
        ``(beats, note)``: float32 (n, len(leads) * 187), leads side by side (n may be 0), and
        what was used or why no beat.

    Raises:
        MissingLeadsError: the record lacks some of the leads (named with the record).
        DataError: the record's files are missing or unreadable.
    """
    from ecgops.data import multilead as ml

    found = ml.record_lead_beats(ml.read_leads(path, leads), cfg)
    n = len(found.peak)
    beats = found.beats.reshape(n, len(leads) * BEAT_LEN).astype(np.float32)
    if n == 0:
        return beats, (
            f"no usable beat in leads {', '.join(leads)} ({found.n_peaks} R-peaks, "
            f"{found.method}; every lead must give the beat)"
        )
    return beats, f"{n} beats, leads {', '.join(leads)}, {found.method} R-peaks"
