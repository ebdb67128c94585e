"""Benchmark: does RR context carry MIT-BIH beat classification to new patients (DS1 -> DS2)?

On the real MIT-BIH beat table (``ecgops data build --task mitbih``), with the inter-record
split of de Chazal et al. (2004) (``data.mitbih.ds1`` trains, ``ds2`` tests; records 201/202 are
one subject, so inter-record rather than strictly inter-patient), the 4 AAMI classes N, S, V,
F (Q dropped, it is almost absent from DS1/DS2), and a class-weighted LightGBM (the configured
``classical.lgbm`` settings, one thread), it compares the inputs:

- ``raw``: the 187 beat samples;
- ``raw+rr``: the samples and the RR context (``schema.CONTEXT_COLUMNS``);
- ``rr+morph``: the RR context and a few morphology features of the beat (R, S trough, QRS
  width, T wave extremes, spread and shape of the beat);
- ``raw+rr_norm`` / ``rr_norm+morph``: the same with patient-adaptive RR: every RR interval
  divided by its record's mean ``rr_prev`` (label-free, per record, DS2 records included: the
  normalisation needs no labels), ratios kept.

Validation: whole DS1 records (``ecgops.data.splits.grouped_val``, ``splits.val_size``, seeded)
are held out of training; the variant a user should pick is the one with the best mean
sensitivity on them. By default every model has ``classical.lgbm.n_estimators`` trees (quick:
200): with about 3 validation records holding a handful of F beats, early stopping on them
stops after a few trees; ``--patience K`` stops on their mean sensitivity instead. DS2 is
only scored, never used for a choice. To keep the run short, N beats of the training records
are subsampled (``--max-n``, seeded) before the class weights are computed.

The table's context settings (``data.rhythm``, e.g. ``look_ahead: true`` uses the next beat)
are recorded in the output. Prints a markdown table and writes
``<outputs>/benchmarks/context.json``: per variant and part (val, DS2), the sensitivity and
positive predictivity of N, S, V, F, their mean sensitivity and the overall accuracy.

Usage::

    ECGOPS_PROFILE=quick ecgops data build --task mitbih
    ECGOPS_PROFILE=quick nice -n 10 python benchmarks/bench_context.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgops.config import Config, load_config  # noqa: E402
from ecgops.schema import (  # noqa: E402
    CONTEXT_COLUMNS,
    RR_COLUMNS,
    SIGNAL_COLUMNS,
    has_context,
    signals,
    true_lengths,
)

CLASSES = ["N", "S", "V", "F"]  # AAMI labels 0..3; Q (4) is dropped
# morphology windows (seconds after the R-peak, which is sample 0 of a beat)
S_WINDOW_S = 0.1  # S trough: minimum within 0.1 s
T_START_S = 0.16  # T wave: extremes from 0.16 s ...
T_END_SHARE = 0.6  # ... to this share of the beat's length
HALF = 0.5  # QRS width: samples until the signal falls below half of R - S
VARIANTS = ["raw", "raw+rr", "rr+morph", "raw+rr_norm", "rr_norm+morph"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="params profile (default: params.yaml)")
    parser.add_argument("--table", type=Path, default=None, help="beat table parquet")
    parser.add_argument("--max-n", type=int, default=15000, help="N beats kept for training")
    parser.add_argument(
        "--patience", type=int, default=0, help="early stopping on val mean Se (0: none)"
    )
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=None, help="JSON output")
    return parser.parse_args(argv)


def morphology(x: np.ndarray, fs: float) -> pd.DataFrame:
    """A few morphology features of beats (n, 187) that start at their R-peak.

    Args:
        x: beats, zero-padded at the end.
        fs: their sampling rate.

    Returns:
        One row per beat: R level, S trough level and position, QRS width, T maximum and
        minimum and the T maximum's position, mean, standard deviation, skewness, kurtosis
        and length of the beat (seconds).
    """
    n, width = x.shape
    length = true_lengths(x)
    s_len = max(2, int(round(S_WINDOW_S * fs)))
    r = x[:, 0]
    s_pos = np.argmin(x[:, :s_len], axis=1)
    s_min = x[np.arange(n), s_pos]
    below = x < (s_min + HALF * (r - s_min))[:, None]
    qrs = np.argmax(below, axis=1) / fs
    t0 = int(round(T_START_S * fs))
    t1 = np.maximum(t0 + 1, np.round(T_END_SHARE * length).astype(int))
    cols = np.arange(width)[None, :]
    in_t = (cols >= t0) & (cols < t1[:, None])
    t_max = np.where(in_t, x, -np.inf).max(axis=1)
    t_min = np.where(in_t, x, np.inf).min(axis=1)
    t_pos = np.argmax(np.where(in_t, x, -np.inf), axis=1) / fs
    inside = cols < length[:, None]
    mean = np.where(inside, x, 0).sum(axis=1) / length
    dev = np.where(inside, x - mean[:, None], 0)
    std = np.sqrt((dev**2).sum(axis=1) / length)
    safe = np.where(std > 0, std, 1.0)
    skew = (dev**3).sum(axis=1) / length / safe**3
    kurt = (dev**4).sum(axis=1) / length / safe**4
    values = {
        "m_r": r,
        "m_s": s_min,
        "m_s_pos": s_pos / fs,
        "m_qrs": qrs,
        "m_t_max": np.where(np.isfinite(t_max), t_max, 0.0),
        "m_t_min": np.where(np.isfinite(t_min), t_min, 0.0),
        "m_t_pos": t_pos,
        "m_mean": mean,
        "m_std": std,
        "m_skew": skew,
        "m_kurt": kurt,
        "m_len": length / fs,
    }
    return pd.DataFrame(values)


def normalised_rr(df: pd.DataFrame) -> pd.DataFrame:
    """RR intervals divided by their record's mean ``rr_prev`` (ratios unchanged)."""
    scale = df.groupby("record", sort=False)["rr_prev"].transform("mean")
    out = df[CONTEXT_COLUMNS].copy()
    for c in RR_COLUMNS:
        out[c] = df[c] / scale
    return out.add_suffix("_norm")


def inputs(df: pd.DataFrame, fs: float) -> dict[str, pd.DataFrame]:
    """Every variant's input frame (same rows as ``df``)."""
    raw = pd.DataFrame(signals(df), columns=SIGNAL_COLUMNS, index=df.index)
    rr = df[CONTEXT_COLUMNS]
    rr_norm = normalised_rr(df)
    morph = morphology(signals(df), fs).set_index(df.index)
    return {
        "raw": raw,
        "raw+rr": pd.concat([raw, rr], axis=1),
        "rr+morph": pd.concat([rr, morph], axis=1),
        "raw+rr_norm": pd.concat([raw, rr_norm], axis=1),
        "rr_norm+morph": pd.concat([rr_norm, morph], axis=1),
    }


def aami_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Per-class sensitivity (Se) and positive predictivity (+P), mean Se, accuracy."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, pred, labels=range(len(CLASSES)))
    out: dict[str, Any] = {"beats": int(len(y)), "confusion": cm.tolist()}
    se = []
    for k, name in enumerate(CLASSES):
        true, called = cm[k].sum(), cm[:, k].sum()
        out[f"{name}_se"] = round(float(cm[k, k] / true), 4) if true else None
        out[f"{name}_ppv"] = round(float(cm[k, k] / called), 4) if called else None
        if true:
            se.append(cm[k, k] / true)
    out["mean_se"] = round(float(np.mean(se)), 4)
    out["accuracy"] = round(float(np.trace(cm) / cm.sum()), 4)
    return out


def mean_se_metric(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[str, float, bool]:
    """LightGBM eval metric: mean sensitivity over the classes present (higher is better)."""
    pred = np.asarray(y_pred).reshape(len(y_true), -1).argmax(axis=1)
    se = [np.mean(pred[y_true == k] == k) for k in np.unique(y_true)]
    return "mean_se", float(np.mean(se)), True


def fit_score(
    cfg: Config,
    frames: dict[str, pd.DataFrame],
    y: np.ndarray,
    parts: dict[str, np.ndarray],
    patience: int,
) -> dict[str, Any]:
    """Train the class-weighted LightGBM on one variant, score val and DS2."""
    import lightgbm as lgb

    p = cfg.classical.lgbm
    train, val, test = (frames[k] for k in ("train", "val", "test"))
    model = lgb.LGBMClassifier(
        objective="multiclass",
        n_estimators=p.n_estimators,
        learning_rate=p.learning_rate,
        num_leaves=p.num_leaves,
        subsample=p.subsample,
        subsample_freq=p.subsample_freq,
        colsample_bytree=p.colsample_bytree,
        class_weight="balanced",
        n_jobs=1,
        random_state=cfg.seed,
        verbose=-1,
        metric="None",
    )
    started = time.perf_counter()
    stop: dict[str, Any] = {}
    if patience > 0:
        stop = {
            "eval_X": (val,),
            "eval_y": (y[parts["val"]],),
            "eval_metric": mean_se_metric,
            "callbacks": [lgb.early_stopping(patience, verbose=False)],
        }
    model.fit(train, y[parts["train"]], **stop)
    seconds = time.perf_counter() - started
    best = int(model.best_iteration_ or p.n_estimators) if patience > 0 else p.n_estimators
    out = {"features": int(train.shape[1]), "trees": best, "fit_seconds": round(seconds, 1)}
    for name, frame in (("val", val), ("ds2", test)):
        pred = model.predict(frame, num_iteration=best)
        out[name] = aami_scores(y[parts[name if name == "val" else "test"]], pred)
    return out


def split(cfg: Config, df: pd.DataFrame, max_n: int) -> dict[str, np.ndarray]:
    """Row masks: train (DS1 minus val, N subsampled), val (whole DS1 records), test (DS2)."""
    from ecgops.data.splits import grouped_val

    m = cfg.data.mitbih
    records, y = df["record"].to_numpy(), df["label"].to_numpy()
    ds1, ds2 = np.isin(records, m.ds1), np.isin(records, m.ds2)
    val = grouped_val(y, records, ds1, cfg.splits.val_size, cfg.seed)
    train = ds1 & ~val
    normal = np.flatnonzero(train & (y == 0))
    if len(normal) > max_n:
        rng = np.random.default_rng(cfg.seed)
        drop = rng.choice(normal, len(normal) - max_n, replace=False)
        train[drop] = False
    return {"train": train, "val": val, "test": ds2}


def table(results: dict[str, Any]) -> str:
    """Markdown table of the DS2 (and val) scores per variant."""
    head = ["variant", "part", *[f"{c} Se" for c in CLASSES], *[f"{c} +P" for c in CLASSES]]
    head += ["mean Se", "acc", "trees"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        for part in ("val", "ds2"):
            s = res[part]
            cells = [name, part]
            cells += [_fmt(s[f"{c}_se"]) for c in CLASSES] + [_fmt(s[f"{c}_ppv"]) for c in CLASSES]
            cells += [_fmt(s["mean_se"]), _fmt(s["accuracy"]), str(res["trees"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    from ecgops.data.validation import read_beat_table
    from ecgops.io import write_json

    args = _parse(argv)
    cfg = load_config(profile=args.profile)
    path = args.table or cfg.path("processed") / "mitbih.parquet"
    df = read_beat_table(path)
    if not has_context(df):
        print(f"{path}: no RR context; build it with `ecgops data build --task mitbih`")
        return 2
    started = time.perf_counter()
    variants = inputs(df, cfg.data.fs)
    keep = (df["label"] < len(CLASSES)).to_numpy()
    df = df[keep]
    parts = split(cfg, df, args.max_n)
    y = df["label"].to_numpy()
    results: dict[str, Any] = {}
    for name in args.variants:
        frame = variants[name][keep]
        frames = {k: frame[mask] for k, mask in parts.items()}
        results[name] = fit_score(cfg, frames, y, parts, args.patience)
        print(f"{name}: DS2 mean Se {results[name]['ds2']['mean_se']:.3f}", flush=True)
    chosen = max(results, key=lambda k: results[k]["val"]["mean_se"])
    counts = {k: np.bincount(y[m], minlength=len(CLASSES)).tolist() for k, m in parts.items()}
    payload = {
        "table": str(path),
        "profile": cfg.profile,
        "classes": CLASSES,
        "rhythm": cfg.data.rhythm.model_dump(mode="json"),
        "lgbm": {**cfg.classical.lgbm.model_dump(mode="json"), "class_weight": "balanced"},
        "max_n": args.max_n,
        "patience": args.patience,
        "beats_per_part": counts,
        "val_records": sorted(set(df.loc[parts["val"], "record"])),
        "chosen_on_val": chosen,
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    out = args.out or cfg.path("outputs") / "benchmarks" / "context.json"
    write_json(payload, out)
    print(table(results))
    print(f"beats per part (N, S, V, F): {counts}; val records {payload['val_records']}")
    print(f"chosen on DS1 val records: {chosen}; wrote {out} in {payload['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
