"""Helpers of the ``ecgops annotate`` tests: a real small model and the CLI.

- ``annotation_model``: a logistic regression trained on the MIT-BIH fixture beats
  (``tests/fixtures/beats_mitbih.parquet``), logged with the project's pyfunc wrapper into a
  SQLite MLflow store in a temporary folder; yields ``(runs:/ URI, tracking URI)``.
- :func:`run_cli`: ``ecgops`` through typer's CliRunner against that store (smoke profile).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "tests" / "fixtures" / "raw"
ANNOTATE_RAW = RAW / "annotate"
REC_128 = ANNOTATE_RAW / "mit233_128hz"
REC_PLAIN = ANNOTATE_RAW / "mit119_noatr"
CLASSES = ("N", "S", "V", "F", "Q")


@pytest.fixture(scope="session")
def annotation_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real small MIT-BIH beat model logged as a pyfunc: ``(model URI, tracking URI)``."""
    import mlflow
    from fixtures_mlflow import beat_table, xy
    from sklearn.linear_model import LogisticRegression

    from ecgops.registry.pyfunc import log_beat_model

    tracking = f"sqlite:///{tmp_path_factory.mktemp('annotate-mlflow') / 'mlflow.db'}"
    x, y = xy(beat_table("mitbih"))
    clf = LogisticRegression(max_iter=500).fit(x, y)
    # mlflow.set_tracking_uri also sets $MLFLOW_TRACKING_URI: keep it out of other tests.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking)
        mlflow.set_tracking_uri(tracking)
        mlflow.set_experiment("annotate-test")
        with mlflow.start_run() as run:
            log_beat_model(clf, "mitbih", list(CLASSES), x[:3])
        yield f"runs:/{run.info.run_id}/model", tracking


def run_cli(args: list[str], tracking: str):
    """Run ``ecgops <args>`` in-process (smoke profile, the test's MLflow store)."""
    from ecgops.cli import app

    env = {"MLFLOW_TRACKING_URI": tracking, "ECGOPS_PROFILE": "smoke", "ECGOPS_ROOT": str(ROOT)}
    return CliRunner(env=env).invoke(app, args)
