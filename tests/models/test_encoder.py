"""The transfer encoder: shapes, freezing, save/load round trip, config by name."""

from __future__ import annotations

import pytest
import torch

from ecgops.config import load_config
from ecgops.errors import DataError
from ecgops.models.encoder import (
    Classifier,
    Encoder,
    ProjectionHead,
    build_encoder,
    build_projection,
    load_encoder,
    save_encoder,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the CI machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_shapes_and_config_by_name():
    cfg = load_config(profile="smoke")
    enc = build_encoder(cfg)
    assert isinstance(enc, Encoder) and enc.embedding_dim == cfg.transfer.embedding_dim == 16
    x = torch.rand(5, 187)
    h = enc(x)
    assert h.shape == (5, 16)
    assert torch.allclose(enc.eval()(x), enc(x.unsqueeze(1)))
    assert build_projection(cfg)(h).shape == (5, cfg.transfer.projection_dim)
    assert Classifier(enc, 2)(x).shape == (5, 2)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder(cfg, arch="nope")


def test_frozen_encoder_stays_in_eval_mode_without_grads():
    model = Classifier(Encoder(16, channels=8, blocks=2, kernel=3), 2).freeze_encoder(True)
    model.train()
    assert model.training and model.head.training and not model.encoder.training
    assert all(not p.requires_grad for p in model.encoder.parameters())
    model.freeze_encoder(False).train()
    assert model.encoder.training
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_save_load_round_trip(tmp_path):
    enc = Encoder(16, channels=8, blocks=2, kernel=3).eval()
    path = tmp_path / "enc" / "contrastive-beat.pt"
    sha = save_encoder(enc, path, {"method": "contrastive", "run_id": "abc"})
    assert len(sha) == 64 and path.exists()
    loaded, meta = load_encoder(path)
    assert meta == {"method": "contrastive", "run_id": "abc"}
    x = torch.rand(3, 187)
    assert torch.equal(loaded(x), enc(x))
    assert ProjectionHead(16, 32)(loaded(x)).shape == (3, 32)


def test_load_encoder_names_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_encoder(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="bad.pt"):
        load_encoder(bad)
