"""Attention maps of the transformer: where on the beat the model looks.

From every layer's per-head weights (n, heads, T, T) (rows: query tokens, columns: keys) this
module derives, per beat and token:

* **rollout** (Abnar & Zuidema 2020): heads averaged, the residual path added
  (``0.5 * A + 0.5 * I``, rows renormalised), layers multiplied; since the classifier
  mean-pools the real tokens, a token's relevance is its rollout column averaged over the real
  query tokens;
* **mean**: the attention a token receives, averaged over heads, layers and real queries;
* **per layer**: the same per layer.

Padded tokens receive exactly zero. Maps are expanded from tokens to the 187 samples (a patch's
value repeated over its samples), plotted over the ECG trace for a few correctly and wrongly
classified test beats of each class (``attention_{class}_{correct|wrong}.png``) and as
per-class mean profiles (``attention_profile.png``), and written as CSVs for DVC plots.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgops.config import Config
from ecgops.io import atomic_path


def rollout(weights: list[np.ndarray], key_mask: np.ndarray, residual: float) -> np.ndarray:
    """Attention rollout relevance of each token for the pooled output.

    Args:
        weights: per layer (n, heads, T, T) attention weights.
        key_mask: (n, T) bool, True at padded tokens.
        residual: share of the identity (the residual path) in each layer's mixing
            (``deep.attention.rollout_residual``; Abnar & Zuidema use 0.5).

    Returns:
        (n, T) relevance, summing to 1 over each beat's tokens (0 at padding).
    """
    n, t = key_mask.shape
    eye = np.eye(t)[None]
    joint = np.broadcast_to(eye, (n, t, t)).copy()
    for w in weights:
        a = residual * w.mean(axis=1) + (1 - residual) * eye
        a = a / a.sum(axis=-1, keepdims=True)
        joint = a @ joint
    return _pool_queries(joint, key_mask)


def mean_attention(weights: list[np.ndarray], key_mask: np.ndarray) -> np.ndarray:
    """Attention received per token, averaged over heads, layers and real queries (n, T)."""
    return np.mean(layer_maps(weights, key_mask), axis=1)


def layer_maps(weights: list[np.ndarray], key_mask: np.ndarray) -> np.ndarray:
    """Attention received per token in each layer, averaged over heads and real queries.

    Returns:
        (n, layers, T), each row summing to 1 over the beat's tokens.
    """
    return np.stack([_pool_queries(w.mean(axis=1), key_mask) for w in weights], axis=1)


def _pool_queries(matrix: np.ndarray, key_mask: np.ndarray) -> np.ndarray:
    """Average (n, T, T) query rows over the real (unpadded) queries -> (n, T), sums to 1."""
    real = (~key_mask).astype(np.float64)
    pooled = np.einsum("nq,nqk->nk", real, matrix) / real.sum(axis=1, keepdims=True)
    pooled = pooled * real
    return pooled / np.maximum(pooled.sum(axis=1, keepdims=True), 1e-12)


def to_samples(maps: np.ndarray, patch: int, length: int) -> np.ndarray:
    """Token maps (..., T) -> sample maps (..., length): each token's value over its samples."""
    return np.repeat(maps, patch, axis=-1)[..., :length]


def compute_maps(
    model: Any, x: np.ndarray, batch_size: int, residual: float, device: Any = None
) -> dict:
    """Attention maps of a :class:`~ecgops.models.nets.transformer.TransformerNet` for beats.

    Args:
        model: the transformer (its mode is restored afterwards).
        x: beats, (n, 187) float32.
        batch_size: beats per forward pass.
        residual: the rollout's residual share (see :func:`rollout`).
        device: where to run (default: the model's device).

    Returns:
        ``rollout`` (n, 187), ``mean`` (n, 187), ``layers`` (n, n_layers, 187) at sample
        resolution, ``tokens`` (T), ``heads`` and ``raw_shapes`` (the per-layer weight shapes
        of the first batch: (batch, heads, T, T)).
    """
    import torch

    from ecgops.models.nets.masking import padding_mask

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"rollout": [], "mean": [], "layers": []}
    shapes: list[tuple[int, ...]] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                xb = torch.tensor(np.asarray(x[start : start + batch_size], np.float32))
                xb = xb.to(device)
                _, weights = model(xb, return_attention=True)
                key_mask = model.token_mask(padding_mask(xb)).cpu().numpy()
                w = [wl.float().cpu().numpy().astype(np.float64) for wl in weights]
                shapes = shapes or [tuple(wl.shape) for wl in w]
                out["rollout"].append(rollout(w, key_mask, residual))
                out["mean"].append(mean_attention(w, key_mask))
                out["layers"].append(layer_maps(w, key_mask))
    finally:
        model.train(was_training)
    length = x.shape[1]
    maps = {k: to_samples(np.concatenate(v), model.patch, length) for k, v in out.items()}
    maps.update(tokens=model.n_tokens, heads=shapes[0][1] if shapes else 0, raw_shapes=shapes)
    return maps


def pick_examples(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, per_group: int, seed: int
) -> dict[tuple[int, bool], np.ndarray]:
    """Up to ``per_group`` test beats for each (true class, correctly classified?) pair.

    Returns:
        ``{(class, correct): indices}`` (sorted; pairs without beats are left out).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for c in range(n_classes):
        for correct in (True, False):
            members = np.flatnonzero((y_true == c) & ((y_pred == c) == correct))
            if len(members):
                take = min(per_group, len(members))
                out[(c, correct)] = np.sort(rng.choice(members, size=take, replace=False))
    return out


def plot_examples(
    x: np.ndarray,
    maps: dict,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: list[str],
    title: str,
    path: Path,
) -> Path:
    """Beats (columns) with rollout shading over the trace and a per-layer heat strip below.

    Args:
        x: the beats to draw, (m, 187).
        maps: :func:`compute_maps` output for these beats.
        y_true, y_pred: their labels and predictions.
        class_names: names in label order.
        title: figure title.
        path: PNG to write (atomically).

    Returns:
        ``path``.
    """
    from ecgops.evaluation.plots import _pyplot

    plt = _pyplot()
    m = len(x)
    n_layers = maps["layers"].shape[1]
    fig, axes = plt.subplots(
        2,
        m,
        figsize=(3.6 * m + 0.6, 4.6),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 0.35 * (n_layers + 2)]},
    )
    t = np.arange(x.shape[1])
    cmap = plt.get_cmap("magma").with_extremes(bad="0.85")
    for j in range(m):
        top, bottom = axes[0, j], axes[1, j]
        real = maps["rollout"][j] > 0
        rel = _contrast(maps["rollout"][j], real)
        top.fill_between(
            t[real],
            0,
            rel[real],
            step="mid",
            color="tab:red",
            alpha=0.3,
            lw=0,
            label="rollout (min-max)",
        )
        top.plot(t, x[j], color="black", lw=1.0, label="beat")
        top.scatter(t[real], x[j][real], c=rel[real], cmap="Reds", s=7, vmin=0, vmax=1, zorder=3)
        top.set_ylim(-0.02, 1.05)
        top.set_title(f"true {class_names[y_true[j]]} / pred {class_names[y_pred[j]]}", fontsize=9)
        rows = np.vstack([maps["layers"][j], maps["mean"][j], maps["rollout"][j]])
        rows = np.ma.masked_array(
            [_contrast(r, real) for r in rows], mask=np.broadcast_to(~real, rows.shape)
        )
        bottom.imshow(rows, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        bottom.set_yticks(
            range(n_layers + 2),
            [f"layer {i + 1}" for i in range(n_layers)] + ["mean", "rollout"],
            fontsize=7,
        )
        bottom.set_xlabel("sample (125 Hz)", fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save_figure(fig, path)


def _contrast(values: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Min-max scale ``values`` over the real samples (0 elsewhere), for display."""
    out = np.zeros_like(values, dtype=np.float64)
    if real.any():
        lo, hi = values[real].min(), values[real].max()
        out[real] = (values[real] - lo) / (hi - lo) if hi > lo else 1.0
    return out


def plot_profiles(profiles: pd.DataFrame, class_names: list[str], title: str, path: Path) -> Path:
    """Per-class mean rollout over the test beats, with the mean beat for reference."""
    from ecgops.evaluation.plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(class_names), figsize=(3.4 * len(class_names), 3.2), squeeze=False, sharey=True
    )
    for c, name in enumerate(class_names):
        ax = axes[0, c]
        rows = profiles[profiles["class"] == name]
        if rows.empty:
            ax.set_title(f"{name}: no test beats", fontsize=9)
            continue
        rel = rows["rollout"].to_numpy()
        ax.fill_between(
            rows["sample"],
            0,
            _contrast(rel, rel > 0),
            step="mid",
            color="tab:red",
            alpha=0.3,
            lw=0,
            label="mean rollout (min-max)",
        )
        ax.plot(rows["sample"], rows["mean_beat"], color="black", lw=1.0, label="mean beat")
        ax.set_title(f"{name} (n={int(rows['beats'].iloc[0])})", fontsize=9)
        ax.set_xlabel("sample (125 Hz)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10, y=1.03)
    return _save_figure(fig, path)


def save_attention_maps(
    cfg: Config,
    *,
    task: str,
    scheme: str,
    model: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    name: str = "transformer",
    device: Any = None,
) -> dict[str, Any]:
    """Write the attention figures and CSVs of a trained transformer and log them to MLflow.

    Figures go to ``outputs/figures/{task}/{scheme}/{name}/attention_*.png``; CSVs to
    ``outputs/plots/{task}/{scheme}/{name}/attention_{profile,examples}.csv``.

    Args:
        cfg: configuration (``deep.attention``, ``deep.eval_batch_size``, ``seed``).
        task, scheme, name: identify the model.
        model: the trained transformer.
        x_test, y_test, proba_test: test beats, labels and predicted probabilities.
        device: where to run the model.

    Returns:
        ``{"figures": [...], "csv": [...], "examples": n, "layers": L, "heads": H,
        "tokens": T}``.
    """
    from ecgops.evaluation.results import figures_dir, plots_dir

    settings = cfg.deep.attention
    class_names = cfg.class_names(task)
    y_pred = proba_test.argmax(axis=1)
    fdir, pdir = figures_dir(cfg, task, scheme, name), plots_dir(cfg, task, scheme, name)
    batch = cfg.deep.eval_batch_size // 4 or 1  # weights are (batch, heads, T, T) per layer
    for old in fdir.glob("attention_*.png"):
        old.unlink()

    groups = pick_examples(y_test, y_pred, len(class_names), settings.examples_per_class, cfg.seed)
    figures: list[Path] = []
    example_rows: list[pd.DataFrame] = []
    maps: dict = {}
    for (c, correct), idx in groups.items():
        maps = compute_maps(model, x_test[idx], batch, settings.rollout_residual, device)
        kind = "correct" if correct else "wrong"
        title = f"Attention rollout: {task} / {scheme} split / {class_names[c]} beats, {kind}"
        path = fdir / f"attention_{class_names[c]}_{kind}.png"
        figures.append(
            plot_examples(x_test[idx], maps, y_test[idx], y_pred[idx], class_names, title, path)
        )
        example_rows.append(_example_frame(idx, x_test, y_test, y_pred, maps, class_names))

    rng = np.random.default_rng(cfg.seed)
    n = len(x_test)
    subset = np.sort(rng.choice(n, size=min(n, settings.max_beats), replace=False))
    profile_maps = compute_maps(model, x_test[subset], batch, settings.rollout_residual, device)
    profiles = _profile_frame(x_test[subset], y_test[subset], profile_maps, class_names)
    figures.append(
        plot_profiles(
            profiles,
            class_names,
            f"Mean attention rollout per class: {task} / {scheme} split",
            fdir / "attention_profile.png",
        )
    )
    csvs = [_write_csv(profiles, pdir / "attention_profile.csv")]
    if example_rows:
        csvs.append(
            _write_csv(pd.concat(example_rows, ignore_index=True), pdir / "attention_examples.csv")
        )
    _log_to_mlflow(figures, csvs)
    return {
        "figures": [str(p) for p in figures],
        "csv": [str(p) for p in csvs],
        "examples": int(sum(len(v) for v in groups.values())),
        "layers": int(profile_maps["layers"].shape[1]),
        "heads": int(profile_maps["heads"]),
        "tokens": int(profile_maps["tokens"]),
    }


def _example_frame(idx, x, y, y_pred, maps, class_names) -> pd.DataFrame:
    frames = []
    for j, i in enumerate(idx):
        data = {
            "beat_index": int(i),
            "class": class_names[y[i]],
            "predicted": class_names[y_pred[i]],
            "correct": bool(y[i] == y_pred[i]),
            "sample": np.arange(x.shape[1]),
            "signal": x[i],
            "rollout": maps["rollout"][j],
            "mean": maps["mean"][j],
        }
        for layer in range(maps["layers"].shape[1]):
            data[f"layer_{layer + 1}"] = maps["layers"][j, layer]
        frames.append(pd.DataFrame(data))
    return pd.concat(frames, ignore_index=True)


def _profile_frame(x, y, maps, class_names) -> pd.DataFrame:
    frames = []
    for c, name in enumerate(class_names):
        sel = y == c
        if not sel.any():
            continue
        data = {
            "class": name,
            "sample": np.arange(x.shape[1]),
            "beats": int(sel.sum()),
            "mean_beat": x[sel].mean(axis=0),
            "rollout": maps["rollout"][sel].mean(axis=0),
            "mean": maps["mean"][sel].mean(axis=0),
        }
        for layer in range(maps["layers"].shape[1]):
            data[f"layer_{layer + 1}"] = maps["layers"][sel, layer].mean(axis=0)
        frames.append(pd.DataFrame(data))
    return pd.concat(frames, ignore_index=True)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    return path


def _save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _log_to_mlflow(figures: list[Path], csvs: list[Path]) -> None:
    mlflow = sys.modules.get("mlflow")  # not imported: no run can be active
    if mlflow is None or mlflow.active_run() is None:
        return
    for path in figures:
        mlflow.log_artifact(str(path), artifact_path="figures/attention")
    for path in csvs:
        mlflow.log_artifact(str(path), artifact_path="plots/attention")
