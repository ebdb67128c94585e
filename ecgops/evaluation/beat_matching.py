"""Beat-by-beat evaluation of annotations against reference annotations (ANSI/AAMI EC57).

Test beats (``<record>.<annotate.extension>``, AAMI symbols N, S, V, F, Q as ``ecgops annotate``
writes them) are matched to the reference beats (``<record>.<data.mitbih.annotator>``, beat
symbols mapped to the AAMI classes by ``data.mitbih.beat_symbols``) by
``wfdb.processing.compare_annotations`` with the EC57 window (``annotate.match_window_s``,
150 ms: a pair matches when its samples differ by less than the window).

Each record gives a confusion matrix of ``k + 1`` rows and columns: rows are reference classes,
columns test classes; the last column counts reference beats that no test beat matched
(missed), the last row test beats that matched no reference beat (extra). From it:

- per class ``c``: sensitivity ``Se = M[c, c] / (all reference beats of c)`` (missed ones
  count against it) and positive predictivity ``+P = M[c, c] / (all test beats labelled c)``
  (extra ones count against it);
- QRS detection: ``Se = matched / reference beats``, ``+P = matched / test beats``
  (meaningful when the R-peaks came from a detector; with reference R-peaks it shows which
  beats the annotator could not cut, e.g. in the record's last partial window);
- the mean sensitivity of N, S, V, F (the literature's 4-class figure) and the accuracy over
  matched beats.

Gross statistics sum the matrices over all records (EC57's gross figures). EC57's exclusion of
the first five minutes (for adaptive classifiers) is not applied.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.errors import DataError

log = logging.getLogger(__name__)

GROSS = "gross"
FOUR_CLASSES = ("N", "S", "V", "F")
"""The AAMI classes of the literature's mean sensitivity (Q is almost absent from MIT-BIH)."""


def match_beats(
    ref_sample: np.ndarray,
    ref_label: np.ndarray,
    test_sample: np.ndarray,
    test_label: np.ndarray,
    window: int,
    n_classes: int,
) -> np.ndarray:
    """Confusion matrix of matched beats (``wfdb.processing.compare_annotations``).

    Args:
        ref_sample: reference beat samples, ascending.
        ref_label: their class indices (0..n_classes-1).
        test_sample: test beat samples, ascending (same sampling rate).
        test_label: their class indices.
        window: matching window in samples (a pair matches when closer than this).
        n_classes: number of classes ``k``.

    Returns:
        int64 array (k + 1, k + 1): reference class x test class, last column = missed
        reference beats, last row = extra test beats.
    """
    from wfdb import processing

    k = n_classes
    cm = np.zeros((k + 1, k + 1), dtype=np.int64)
    ref_sample, test_sample = np.asarray(ref_sample), np.asarray(test_sample)
    ref_label, test_label = np.asarray(ref_label), np.asarray(test_label)
    matched = np.full(len(ref_sample), -1, dtype=np.int64)
    if len(ref_sample) and len(test_sample):
        comparitor = processing.compare_annotations(ref_sample, test_sample, int(window))
        matched = np.asarray(comparitor.matching_sample_nums, dtype=np.int64)
    hit = matched >= 0
    np.add.at(cm, (ref_label[hit], test_label[matched[hit]]), 1)
    np.add.at(cm, (ref_label[~hit], k), 1)
    extra = np.setdiff1d(np.arange(len(test_sample)), matched[hit])
    np.add.at(cm, (k, test_label[extra]), 1)
    return cm


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def statistics(cm: np.ndarray, names: list[str]) -> dict[str, float]:
    """QRS and per-class Se / +P, 4-class mean sensitivity and accuracy of a matrix.

    Args:
        cm: a matrix from :func:`match_beats`.
        names: class names in label order.

    Returns:
        ``n_ref, n_test, qrs_se, qrs_ppv, <c>_n, <c>_se, <c>_ppv`` per class,
        ``mean_se_4`` (N, S, V, F present among the names) and ``accuracy``.
    """
    k = len(names)
    matched = cm[:k, :k]
    n_ref, n_test = int(cm[:k].sum()), int(cm[:, :k].sum())
    out: dict[str, float] = {
        "n_ref": n_ref,
        "n_test": n_test,
        "qrs_se": _ratio(matched.sum(), n_ref),
        "qrs_ppv": _ratio(matched.sum(), n_test),
    }
    for j, name in enumerate(names):
        out[f"{name}_n"] = int(cm[j].sum())
        out[f"{name}_se"] = _ratio(cm[j, j], cm[j].sum())
        out[f"{name}_ppv"] = _ratio(cm[j, j], cm[:, j].sum())
    four = [out[f"{c}_se"] for c in FOUR_CLASSES if c in names]
    four = [v for v in four if np.isfinite(v)]
    out["mean_se_4"] = float(np.mean(four)) if four else float("nan")
    out["accuracy"] = _ratio(np.trace(matched), matched.sum())
    return out


def reference_beats(cfg: Config, record: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reference beats of a record (beat symbols only) as ``(samples, AAMI labels)``."""
    from ecgops.data import wfdb_io
    from ecgops.data.sources.mitdb import beat_annotations, symbol_labels

    ann = wfdb_io.read_annotations(record, cfg.data.mitbih.annotator)
    samples, labels = beat_annotations(ann, symbol_labels(cfg.data.mitbih.beat_symbols))
    order = np.argsort(samples, kind="stable")
    return samples[order], labels[order]


def annotated_beats(
    record: Path, extension: str, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Beats of an annotation file written by ``ecgops annotate`` as ``(samples, labels)``.

    Raises:
        DataError: unreadable file, or a symbol that is not one of ``names``.
    """
    from ecgops.data import wfdb_io

    ann = wfdb_io.read_annotations(record, extension)
    index = {n: j for j, n in enumerate(names)}
    unknown = sorted({str(s) for s in ann.symbol if s not in index})
    if unknown:
        where = record.with_name(f"{record.name}.{extension}")
        raise DataError(where, f"symbols {unknown} are not the classes {names}")
    labels = np.array([index[s] for s in ann.symbol], dtype=np.int64)
    order = np.argsort(ann.sample, kind="stable")
    return ann.sample[order], labels[order]


def record_fs(record: Path, fallback: float | None) -> float:
    """Sampling rate of a record from its header, else ``fallback``."""
    from ecgops.data import wfdb_io

    if record.with_name(record.name + ".hea").is_file():
        return float(wfdb_io.read_header(record).fs)
    if fallback:
        return float(fallback)
    raise DataError(record, "no header (.hea) to read the sampling rate from")


def peak_sources(test_dir: Path) -> dict[str, str]:
    """R-peak source per record from ``annotate_summary.json`` (empty when absent)."""
    from ecgops.prediction.annotate import SUMMARY_FILE

    path = test_dir / SUMMARY_FILE
    if not path.is_file():
        return {}
    try:
        return {e["record"]: e.get("peaks", "") for e in json.loads(path.read_text())["records"]}
    except (ValueError, KeyError, TypeError):
        log.warning("%s: unreadable, R-peak sources unknown", path)
        return {}


def evaluate_directory(
    cfg: Config, ref_dir: str | Path, test_dir: str | Path, out: str | Path | None = None
) -> dict[str, Any]:
    """Match every annotated record of ``test_dir`` against ``ref_dir`` (EC57, see above).

    Args:
        cfg: configuration (class names, annotators, matching window).
        ref_dir: folder of the reference records (``.hea`` and the reference annotations).
        test_dir: folder of ``ecgops annotate`` output (``<record>.<annotate.extension>``).
        out: where to save the table: ``.csv`` or ``.json`` (the other one beside it).

    Returns:
        ``{"table": DataFrame (one row per record and a gross row), "confusion": gross
        matrix as nested lists, "classes", "window_s"}``.

    Raises:
        DataError: no annotation file in ``test_dir``, or a missing reference.
    """
    ref_dir, test_dir = Path(ref_dir), Path(test_dir)
    names = cfg.class_names("mitbih")
    ext = cfg.annotate.extension
    files = sorted(test_dir.glob(f"*.{ext}"))
    if not files:
        raise DataError(test_dir, f"no annotation files (*.{ext}) to evaluate")
    sources = peak_sources(test_dir)
    rows, gross = [], np.zeros((len(names) + 1,) * 2, dtype=np.int64)
    for f in files:
        name = f.name[: -len(ext) - 1]
        ref_sample, ref_label = reference_beats(cfg, ref_dir / name)
        test_sample, test_label = annotated_beats(test_dir / name, ext, names)
        fs = record_fs(ref_dir / name, None)
        window = int(round(cfg.annotate.match_window_s * fs))
        cm = match_beats(ref_sample, ref_label, test_sample, test_label, window, len(names))
        gross += cm
        rows.append({"record": name, "peaks": sources.get(name, ""), **statistics(cm, names)})
    rows.append({"record": GROSS, "peaks": "", **statistics(gross, names)})
    table = pd.DataFrame(rows)
    result = {
        "table": table,
        "confusion": gross.tolist(),
        "classes": names,
        "window_s": cfg.annotate.match_window_s,
    }
    if out is not None:
        save_result(result, Path(out))
    return result


def save_result(result: dict[str, Any], out: Path) -> list[Path]:
    """Write the table as CSV and the whole result as JSON (``out`` and its sibling)."""
    from ecgops.io import atomic_path, write_json

    csv_path, json_path = out.with_suffix(".csv"), out.with_suffix(".json")
    with atomic_path(csv_path) as tmp:
        result["table"].to_csv(tmp, index=False, float_format="%.4f")
    payload = {k: v for k, v in result.items() if k != "table"}
    payload["records"] = json.loads(result["table"].to_json(orient="records"))
    write_json(payload, json_path)
    return [csv_path, json_path]


def format_table(table: pd.DataFrame, names: list[str]) -> str:
    """The table as fixed-width text (Se / +P in percent) for the terminal."""
    cols = ["record", "peaks", "n_ref", "n_test", "qrs_se", "qrs_ppv"]
    cols += [f"{n}_{s}" for n in names for s in ("se", "ppv")] + ["mean_se_4", "accuracy"]
    shown = table[cols].copy()
    for c in cols[4:]:
        shown[c] = (100 * shown[c]).round(1)
    return shown.to_string(index=False, na_rep="-")
