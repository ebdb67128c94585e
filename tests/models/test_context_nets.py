"""The context nets: the RR context concatenated after the convolutional encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgops.config import Config
from ecgops.models import CONTEXT_NETS, deep_config_names, split_context
from ecgops.models.nets import build_net


@pytest.mark.parametrize("name", CONTEXT_NETS)
def test_a_context_net_reads_the_context_beside_the_waveform(cfg_smoke: Config, name: str):
    torch.manual_seed(0)
    net = build_net(name, 5, **cfg_smoke.deep.archs[name], context_dim=9).eval()
    x = torch.from_numpy(np.full((3, 187), 0.5, dtype=np.float32))
    a = net(x, context=torch.zeros(3, 9))
    b = net(x, context=torch.ones(3, 9))
    assert a.shape == (3, 5) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="none were given"):
        net(x)
    with pytest.raises(ValueError, match="shape"):
        net(x, context=torch.zeros(3, 4))


@pytest.mark.parametrize("name", CONTEXT_NETS)
def test_without_context_the_net_keeps_its_weights_layout(cfg_smoke: Config, name: str):
    plain = build_net(name, 2, **cfg_smoke.deep.archs[name])
    with_ctx = build_net(name, 2, **cfg_smoke.deep.archs[name], context_dim=9)
    assert plain.state_dict().keys() == with_ctx.state_dict().keys()
    with pytest.raises(ValueError, match="reads no context"):
        plain(torch.zeros(2, 187), context=torch.zeros(2, 9))


def test_nets_without_a_context_head_refuse_a_context_dim(cfg_smoke: Config):
    with pytest.raises(ValueError, match="takes no RR context"):
        build_net("lstm", 2, **cfg_smoke.deep.archs["lstm"], context_dim=9)


def test_context_names():
    assert split_context("features+rr") == ("features", True)
    assert split_context("cnn") == ("cnn", False)
    assert deep_config_names(("cnn", "lstm")) == ("cnn", "lstm", "cnn+rr")
