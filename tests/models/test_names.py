"""The light model-name tuples (checked by the config) agree with the model registries."""

from __future__ import annotations

import numpy as np
import pytest

from ecgops.config import Config
from ecgops.models import CLASSICAL_MODELS, NET_NAMES
from ecgops.models.classical import MODELS, build_pipeline
from ecgops.models.nets import NETS, build_net


def test_net_names_are_the_net_registry():
    assert tuple(NETS) == NET_NAMES


def test_classical_names_are_the_classical_registry():
    assert MODELS == CLASSICAL_MODELS


@pytest.mark.parametrize("name", CLASSICAL_MODELS)
def test_every_classical_name_builds_a_pipeline(cfg_smoke: Config, name: str):
    pipeline = build_pipeline(cfg_smoke, name, "raw", 2, "none")
    assert hasattr(pipeline, "fit") and hasattr(pipeline, "predict_proba")


@pytest.mark.parametrize("name", NET_NAMES)
def test_every_net_name_builds_with_its_configured_arch(cfg_smoke: Config, name: str):
    import torch

    net = build_net(name, 2, **cfg_smoke.deep.archs[name])
    logits = net(torch.from_numpy(np.full((2, 187), 0.5, dtype=np.float32)))
    assert tuple(logits.shape) == (2, 2)
