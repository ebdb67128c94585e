"""The deep nets: shapes, padding handling, the transformer's mask and attention weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.config import load_config
from ecgops.models import split_context
from ecgops.models.nets import NETS, build_net
from ecgops.models.nets.lstm import LSTMNet, reverse_within_length
from ecgops.models.nets.masking import padding_mask as torch_padding_mask
from ecgops.models.nets.masking import true_lengths
from ecgops.schema import padding_mask, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = {
    "lstm": {"hidden": 8, "layers": 2, "dropout": 0.1},
    "bilstm": {"hidden": 8, "layers": 2, "dropout": 0.1},
    "cnn": {"channels": [4, 8], "kernel": 5, "dropout": 0.1, "hidden": 8},
    "rescnn": {"channels": 4, "blocks": 2, "kernel": 5, "dropout": 0.1, "hidden": 8},
    "transformer": {"d_model": 16, "heads": 2, "layers": 2, "ff": 16, "patch": 4, "dropout": 0.1},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def beats() -> np.ndarray:
    """Eight real PTB beats of different true lengths (trailing zero padding)."""
    x = signals(pd.read_parquet(FIXTURES / "beats_ptb.parquet"))
    lengths = (~padding_mask(x)).sum(axis=1)
    order = np.argsort(lengths)
    pick = order[np.linspace(0, len(order) - 1, 8).round().astype(int)]
    assert lengths[pick].min() < 187, "fixture needs padded beats"
    return x[pick]


def test_every_configured_net_is_registered():
    cfg = load_config(profile="smoke")
    configured = {name for names in cfg.pipeline.deep.values() for name in names}
    assert {split_context(name)[0] for name in configured} <= set(NETS)
    assert set(cfg.deep.archs) == set(NETS)


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("n_classes", [2, 5])
def test_output_shapes_and_gradients(name, n_classes, beats):
    torch.manual_seed(0)
    net = build_net(name, n_classes, **TINY[name])
    logits = net(torch.from_numpy(beats))
    assert logits.shape == (len(beats), n_classes)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


def test_configured_archs_build_with_the_params_yaml_settings(beats):
    cfg = load_config(profile="smoke")
    for name, kwargs in cfg.deep.archs.items():
        assert build_net(name, 2, **kwargs)(torch.from_numpy(beats[:2])).shape == (2, 2)


def test_unknown_net_is_refused():
    with pytest.raises(ValueError, match="unknown net"):
        build_net("gru", 2)


def test_torch_padding_mask_matches_schema(beats):
    x = np.vstack([beats, np.zeros((1, 187), np.float32)])  # an all-zero row keeps 1 sample
    assert np.array_equal(torch_padding_mask(torch.from_numpy(x)).numpy(), padding_mask(x))
    lengths = true_lengths(torch.from_numpy(x)).numpy()
    assert lengths[-1] == 1
    assert np.array_equal(lengths, (~padding_mask(x)).sum(axis=1))


@pytest.mark.parametrize("patch", [1, 4])
def test_transformer_ignores_padded_values(patch, beats):
    """Changing the values at padded positions (same mask) leaves the output unchanged."""
    torch.manual_seed(0)
    net = build_net("transformer", 2, **{**TINY["transformer"], "patch": patch}).eval()
    x = torch.from_numpy(beats)
    mask = torch.from_numpy(padding_mask(beats))  # from the ORIGINAL beats
    noisy = x.clone()
    noisy[mask] = torch.rand(int(mask.sum())) + 0.5  # garbage where the padding was
    with torch.no_grad():
        reference = net(x, mask)
        assert torch.allclose(net(noisy, mask), reference, atol=1e-6)
        # the default mask (computed from the zeros) gives the same answer on the clean beats
        assert torch.allclose(net(x), reference, atol=1e-6)
        # not vacuous: the same noise at real positions, or no mask, changes the output
        real_noise = x.clone()
        real_noise[~mask] = torch.rand(int((~mask).sum()))
        assert not torch.allclose(net(real_noise, mask), reference, atol=1e-4)
        assert not torch.allclose(net(noisy), reference, atol=1e-4)


@pytest.mark.parametrize("name", ["lstm", "bilstm", "cnn", "rescnn"])
def test_other_nets_ignore_padded_values_given_the_mask(name, beats):
    torch.manual_seed(0)
    net = build_net(name, 3, **TINY[name]).eval()
    x = torch.from_numpy(beats)
    mask = torch.from_numpy(padding_mask(beats))
    noisy = x.clone()
    noisy[mask] = 0.7
    with torch.no_grad():
        assert torch.allclose(net(noisy, mask), net(x), atol=1e-6)


def test_reverse_within_length_is_an_involution():
    seq = torch.arange(12.0).view(2, 6, 1)
    lengths = torch.tensor([4, 6])
    rev = reverse_within_length(seq, lengths)
    assert rev[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]  # padding steps stay in place
    assert rev[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    assert torch.equal(reverse_within_length(rev, lengths), seq)


def test_bilstm_equals_a_packed_bidirectional_lstm(beats):
    """Our length-aware BiLSTM computes exactly what a packed nn.LSTM computes."""
    torch.manual_seed(0)
    net = LSTMNet(3, hidden=8, layers=2, bidirectional=True).eval()
    ref = torch.nn.LSTM(1, 8, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            for suffix, ours in (
                ("", net.forward_layers[layer]),
                ("_reverse", net.backward_layers[layer]),
            ):
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{w}_l{layer}{suffix}").copy_(getattr(ours, f"{w}_l0"))
        x = torch.from_numpy(beats)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x.unsqueeze(-1), true_lengths(x), batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = ref(packed)
        expected = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        net.head = torch.nn.Identity()
        assert torch.allclose(net(x), expected, atol=1e-5)


@pytest.mark.parametrize("patch", [1, 4])
def test_transformer_returns_per_layer_per_head_attention(patch, beats):
    kwargs = {**TINY["transformer"], "patch": patch}
    net = build_net("transformer", 2, **kwargs).eval()
    x = torch.from_numpy(beats)
    with torch.no_grad():
        logits, weights = net(x, return_attention=True)
        assert torch.allclose(logits, net(x))
    tokens = -(-187 // patch)
    assert len(weights) == kwargs["layers"]
    assert all(w.shape == (len(beats), kwargs["heads"], tokens, tokens) for w in weights)
    key_mask = net.token_mask(torch.from_numpy(padding_mask(beats)))
    for w in weights:
        assert torch.allclose(w.sum(dim=-1), torch.ones(w.shape[:-1]), atol=1e-5)
        # no query attends to a padded key
        assert (w.masked_select(key_mask[:, None, None, :].expand_as(w)) == 0).all()


def test_transformer_fused_attention_equals_multihead_attention(beats):
    """The fused path (``EncoderLayer.attend``, used whenever no weights are asked for) computes
    what ``nn.MultiheadAttention`` does with the same weights and padding mask."""
    net = build_net("transformer", 2, **TINY["transformer"]).eval()
    layer = net.layers[0]
    x = torch.from_numpy(beats)
    patches, mask = net.patches(x, None)
    h = layer.norm1(net.embed(patches) + net.positions)
    key_mask = net.token_mask(mask)
    assert key_mask.any()  # the fixture beats are padded
    with torch.no_grad():
        expected, _ = layer.attn(h, h, h, key_padding_mask=key_mask, need_weights=False)
        assert torch.allclose(layer.attend(h, key_mask), expected, atol=1e-5)
