"""Registry test helpers on top of the shared MLflow fixtures (``tests/fixtures_mlflow.py``)."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture
def ptb(fixture_parts: dict[str, dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The PTB fixture beats as train / val / test parts."""
    return fixture_parts["ptb"]


@pytest.fixture
def mitbih(fixture_parts: dict[str, dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The MIT-BIH fixture beats as train / val / test parts."""
    return fixture_parts["mitbih"]
