"""Fixtures shared by the training tests: the multi-lead tables built from the raw fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecgops.config import Config


@pytest.fixture(scope="module")
def ml_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """ptb and ptb12 tables and splits from the raw fixtures (smoke: leads I, II, V1)."""
    from conftest import ENV_OVERRIDES, RAW_FIXTURES, smoke_config

    from ecgops.data.build import collect, save_table
    from ecgops.data.multilead import build_multilead
    from ecgops.data.multilead_splits import make_multilead_splits
    from ecgops.data.splits import make_splits

    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_OVERRIDES:
            mp.delenv(name, raising=False)
        work = tmp_path_factory.mktemp("ml-train")
        cfg = smoke_config(work, paths={"raw": str(RAW_FIXTURES)})
        save_table(cfg, "ptb", *collect(cfg, "ptb"))
        make_splits(cfg, "ptb")
        build_multilead(cfg)
        make_multilead_splits(cfg)
        yield cfg
