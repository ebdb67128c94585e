"""Neural beat classifiers, registered by name (the names used in ``params.yaml`` deep.archs).

Every net maps beats ``x`` of shape (n, 187) (optionally with a padding ``mask``, True at the
trailing zero padding) to logits of shape (n, n_classes). The nets of
:data:`~ecgops.models.CONTEXT_NETS` (cnn, rescnn) built with ``context_dim > 0`` also take the
beats' RR ``context`` (n, context_dim), concatenated after their convolutional encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from ecgops.models import CONTEXT_NETS, NET_NAMES
from ecgops.models.nets.cnn import CNNNet
from ecgops.models.nets.lstm import LSTMNet
from ecgops.models.nets.rescnn import ResCNNNet
from ecgops.models.nets.transformer import TransformerNet

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "lstm": partial(LSTMNet, bidirectional=False),
    "bilstm": partial(LSTMNet, bidirectional=True),
    "cnn": CNNNet,
    "rescnn": ResCNNNet,
    "transformer": TransformerNet,
}
NETS: dict[str, Callable[..., nn.Module]] = {name: _BUILDERS[name] for name in NET_NAMES}


def build_net(name: str, n_classes: int, **arch_kwargs: Any) -> nn.Module:
    """Build a registered net.

    Args:
        name: a key of :data:`NETS` (lstm, bilstm, cnn, rescnn, transformer).
        n_classes: number of output classes.
        **arch_kwargs: architecture parameters (``params.yaml`` deep.archs.<name>), plus
            ``context_dim`` for a context net.

    Returns:
        The untrained module.
    """
    if name not in NETS:
        raise ValueError(f"unknown net {name!r}; expected one of {sorted(NETS)}")
    if arch_kwargs.get("context_dim") and name not in CONTEXT_NETS:
        raise ValueError(
            f"net {name!r} takes no RR context; the context nets are {', '.join(CONTEXT_NETS)}"
        )
    return NETS[name](n_classes=n_classes, **arch_kwargs)


__all__ = ["NETS", "CNNNet", "LSTMNet", "ResCNNNet", "TransformerNet", "build_net"]
