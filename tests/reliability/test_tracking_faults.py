"""An unreachable MLflow server gives a clear error quickly, never a hang."""

from __future__ import annotations

import socket
import time

import pytest

from ecgops.errors import TrackingUnavailable
from ecgops.tracking import HEALTH_TIMEOUT_S, check_reachable, configure


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_with_a_clear_message(
    cfg_smoke_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    cfg = cfg_smoke_factory(tracking={"uri": uri})
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable) as err:
        configure(cfg)
    # the behaviour is "no hang": a bound that holds on a loaded machine, not a speed target
    assert time.monotonic() - start < HEALTH_TIMEOUT_S * 4
    assert uri in str(err.value) and "unreachable" in str(err.value)


def test_server_that_accepts_but_never_answers_times_out_clearly(cfg_smoke_factory) -> None:
    """A hung server (the TCP connection is accepted, no HTTP answer comes) must not hang the
    pipeline: the health probe gives up after ``HEALTH_TIMEOUT_S``."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        cfg = cfg_smoke_factory(tracking={"uri": uri})
        start = time.monotonic()
        with pytest.raises(TrackingUnavailable) as err:
            configure(cfg)
        waited = time.monotonic() - start
    # it waits for the probe's timeout, then gives up (upper bound generous: a busy CI machine)
    assert HEALTH_TIMEOUT_S * 0.8 <= waited < HEALTH_TIMEOUT_S * 4 + 30
    assert uri in str(err.value) and "unreachable" in str(err.value)
    assert "timed out" in str(err.value)


def test_local_sqlite_store_needs_no_server() -> None:
    check_reachable("sqlite:///tmp/anything.db")  # no exception: nothing to reach
