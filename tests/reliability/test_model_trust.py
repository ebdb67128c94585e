"""Pickled artifacts are loaded only from the project's own registry and folders (issue #10,
security).

``tests/test_predict.py`` checks :func:`ecgops.registry.model.resolve_model_uri` on plain foreign
URIs and paths. Here: the ways out of the project a path can take (``..``, a symlink, a
``file://`` URI), every entry point that loads a model refusing before it reads anything or
contacts a server, and the torch files (checkpoints, encoders) loaded without unpickling code.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgops.config import Config
from ecgops.errors import DataError, RegistryError
from ecgops.schema import labels, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PTBXL = FIXTURES / "raw" / "ptbxl" / "records500" / "00000" / "00001_hr"
REFUSED = "refusing to load a model"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def project(cfg_smoke_factory, tmp_path: Path) -> Config:
    """A project at ``tmp_path/project`` whose tracking server is down: any attempt to reach
    it would fail with TrackingUnavailable, not with the trust check's RegistryError."""
    cfg = cfg_smoke_factory(tracking={"uri": f"http://127.0.0.1:{_closed_port()}"})
    root = tmp_path / "project"
    (root / "models" / "ok").mkdir(parents=True)
    (tmp_path / "elsewhere" / "model").mkdir(parents=True)
    (root / "models" / "link").symlink_to(tmp_path / "elsewhere" / "model")
    return cfg.model_copy(update={"root": root})


FOREIGN = {
    "absolute path outside": lambda root: str(root.parent / "elsewhere" / "model"),
    "dot-dot out of the project": lambda root: str(root / "models/../../elsewhere/model"),
    "symlink inside pointing out": lambda root: str(root / "models" / "link"),
    "file URI outside": lambda root: (root.parent / "elsewhere" / "model").as_uri(),
    "file URI inside": lambda root: (root / "models" / "ok").as_uri(),
    "http": lambda root: "http://127.0.0.1:1/model",
}


@pytest.mark.parametrize("way_out", list(FOREIGN))
def test_foreign_model_locations_are_refused(project: Config, way_out: str) -> None:
    from ecgops.registry.model import check_trusted

    with pytest.raises(RegistryError, match=REFUSED):
        check_trusted(project, FOREIGN[way_out](project.root))


def test_the_projects_own_models_are_trusted(project: Config) -> None:
    from ecgops.registry.model import check_trusted

    check_trusted(project, str(project.root / "models" / "ok"))
    check_trusted(project, "models:/ecgops-ptb@champion")
    check_trusted(project, "runs:/0123/model")


def test_every_loading_entry_point_refuses_before_reading_or_connecting(
    project: Config, tmp_path: Path
) -> None:
    from ecgops import serve
    from ecgops.predict import predict_csv, predict_records

    uri = FOREIGN["symlink inside pointing out"](project.root)
    out = tmp_path / "out.csv"
    with pytest.raises(RegistryError, match=REFUSED):  # the input does not even exist
        predict_csv(uri, tmp_path / "missing.csv", out, cfg=project)
    with pytest.raises(RegistryError, match=REFUSED):
        predict_records(project, "ptb", [tmp_path / "no-record"], out, model_uri=uri)
    with pytest.raises(RegistryError, match=REFUSED):  # not TrackingUnavailable: no contact
        serve.start(project, model=uri, port=_closed_port())
    assert not out.exists()


class _Payload:
    """Unpickling this creates ``marker``: code run by loading a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_encoder_file_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    from ecgops.models.encoder import load_encoder

    marker = tmp_path / "code-ran"
    path = tmp_path / "encoder.pt"
    torch.save({"arch": "rescnn", "hparams": {}, "state_dict": _Payload(marker)}, path)

    with pytest.raises(DataError, match=r"encoder\.pt: not a usable ecgops encoder file"):
        load_encoder(path)
    assert not marker.exists()


def test_checkpoint_with_code_is_ignored_without_running_it(tmp_path: Path) -> None:
    from ecgops.models.nets import build_net
    from ecgops.training.engine import CHECKPOINT_NAME, FitOptions, LoopConfig, fit, set_seed

    df = pd.read_parquet(FIXTURES / "beats_ptb.parquet").sample(frac=1.0, random_state=0)
    x, y = signals(df), labels(df)
    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"fingerprint": _Payload(marker)}, ckpt / CHECKPOINT_NAME)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        set_seed(7)
        net = build_net("cnn", 2, channels=[4, 8], kernel=5, dropout=0.2, hidden=8)
        loop = LoopConfig(
            epochs=1, patience=1, lr=3e-3, weight_decay=1e-4, batch_size=16,
            imbalance="weighted_loss", seed=7,
        )  # fmt: skip
        options = FitOptions(device=torch.device("cpu"), log_mlflow=False, checkpoint_dir=ckpt)
        train, val = (x[:48], y[:48]), (x[48:64], y[48:64])
        result = fit(net, train, val, loop, n_classes=2, options=options)
    finally:
        torch.set_num_threads(threads)
    assert not marker.exists()
    assert result.resumed_from == 0 and len(result.history) == 1  # trained from scratch
    assert np.isfinite(result.history[0]["val_loss"])
