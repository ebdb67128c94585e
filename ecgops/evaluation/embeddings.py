"""Embedding plots: a 2-D projection of encoder embeddings coloured by class.

UMAP when the ``umap`` package is installed, else t-SNE (scikit-learn), else PCA for a
handful of points. Figures go to ``outputs/figures/{task}/{scheme}/{name}/embeddings-{stage}.png``
and, inside an MLflow run, to its ``figures`` artifacts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ecgops.config import Config
from ecgops.evaluation.plots import _pyplot
from ecgops.evaluation.results import figures_dir
from ecgops.io import atomic_path

MIN_TSNE_POINTS = 10
PROBE_MAX_ITER = 1000


@torch.no_grad()
def embed(
    encoder: nn.Module, x: np.ndarray, batch_size: int = 1024, device: torch.device | None = None
) -> np.ndarray:
    """Embeddings of beats ``x`` (n, 187) as float32 (n, d), computed in eval mode.

    The encoder's train/eval mode is restored afterwards.
    """
    device = device or next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[start : start + batch_size], dtype=np.float32))
        out.append(encoder(xb.to(device)).float().cpu().numpy())
    encoder.train(was_training)
    if not out:
        return np.zeros((0, getattr(encoder, "embedding_dim", 0)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def project_2d(emb: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Project embeddings to 2-D: UMAP if installed, else t-SNE, else (tiny inputs) PCA.

    Args:
        emb: embeddings (n, d).
        seed: random state.

    Returns:
        The (n, 2) coordinates and the method's name.
    """
    emb = np.asarray(emb, dtype=np.float64)
    try:
        import umap  # type: ignore[import-not-found]

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(emb), "UMAP"
    except ImportError:
        pass
    if len(emb) >= MIN_TSNE_POINTS:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(emb) - 1) / 3))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return tsne.fit_transform(emb), "t-SNE"
    from sklearn.decomposition import PCA

    n_comp = min(2, emb.shape[0], emb.shape[1])
    coords = PCA(n_components=n_comp).fit_transform(emb)
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords, "PCA"


def subsample(y: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Indices of at most ``max_points`` rows, stratified so that rare classes stay visible.

    Each class gets an equal share of the budget (or all its rows when it has fewer), the
    leftover budget goes to the larger classes at random.
    """
    y = np.asarray(y)
    if len(y) <= max_points:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    share = max_points // len(classes)
    chosen = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        chosen.append(rng.choice(idx, size=min(share, len(idx)), replace=False))
    picked = np.concatenate(chosen)
    rest = np.setdiff1d(np.arange(len(y)), picked)
    extra = rng.choice(rest, size=min(max_points - len(picked), len(rest)), replace=False)
    return np.sort(np.concatenate([picked, extra]))


def plot_embedding_2d(
    coords: np.ndarray, y: np.ndarray, class_names: list[str], title: str, path: Path
) -> Path:
    """Scatter plot of 2-D coordinates coloured by class, written atomically as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for c, name in enumerate(class_names):
        sel = y == c
        if sel.any():
            ax.scatter(
                coords[sel, 0], coords[sel, 1], s=6, alpha=0.6, label=f"{name} ({sel.sum()})"
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(title="class", fontsize=8, markerscale=2)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def embedding_figure(
    cfg: Config,
    encoder: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    scheme: str,
    name: str,
    stage: str,
    device: torch.device | None = None,
) -> Path:
    """Embed test beats, project them to 2-D and save (and log) the class-coloured figure.

    Args:
        cfg: configuration (``transfer.plot_points``, seed, output paths).
        encoder: the encoder to look at.
        x, y: test beats (n, 187) and labels (n,).
        task, scheme, name: which model's figure folder to write to.
        stage: e.g. ``init``, ``pretrained``, ``before-finetune``, ``after-finetune``.
        device: where to run the encoder.

    Returns:
        Path of the PNG.
    """
    import mlflow

    idx = subsample(y, cfg.transfer.plot_points, cfg.seed)
    emb = embed(encoder, x[idx], cfg.transfer.batch_size, device)
    coords, method = project_2d(emb, cfg.seed)
    title = f"{task} / {scheme} test embeddings, {name} ({stage}, {method}, n={len(idx)})"
    path = figures_dir(cfg, task, scheme, name) / f"embeddings-{stage}.png"
    plot_embedding_2d(coords, np.asarray(y)[idx], cfg.class_names(task), title, path)
    if mlflow.active_run() is not None:
        mlflow.log_artifact(str(path), artifact_path="figures")
    return path


def linear_probe(emb: np.ndarray, y: np.ndarray, class_weight: str, seed: int):
    """Fit a linear probe (standardised embeddings -> logistic regression).

    The usual yardstick of a representation: how well a linear model separates the classes
    in the embedding space, with the encoder fixed.

    Args:
        emb: training embeddings (n, d).
        y: training labels (n,).
        class_weight: ``balanced`` or ``none``.
        seed: random state.

    Returns:
        A fitted scikit-learn pipeline with ``predict_proba``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(
        max_iter=PROBE_MAX_ITER,
        class_weight=None if class_weight == "none" else class_weight,
        random_state=seed,
    )
    return make_pipeline(StandardScaler(), clf).fit(emb, y)


def probe_proba(probe, emb: np.ndarray, n_classes: int) -> np.ndarray:
    """Probe probabilities over all ``n_classes`` (zeros for classes unseen in training)."""
    out = np.zeros((len(emb), n_classes), dtype=np.float64)
    out[:, probe.classes_] = probe.predict_proba(emb)
    return out
