"""The ``train-multilead`` flow against a real Prefect server: classical models beside the nets."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_flow_trains_classical_per_lead_models_and_caches_them(
    in_server, ingested_project, monkeypatch: pytest.MonkeyPatch, read_artifacts
) -> None:
    from flows.train_multilead import train_multilead

    for key, value in ingested_project.env.items():
        monkeypatch.setenv(key, value)
    metrics = ingested_project.root / "outputs" / "metrics" / "ptb12" / "beat"

    records = train_multilead(
        profile="smoke", schemes=["beat"], models=[], lead_sets=["ii"], classical=["lgbm"]
    )

    assert [r["name"] for r in records] == ["lgbm-features-ii"]
    written = json.loads((metrics / "lgbm-features-ii.json").read_text())
    assert written["model"]["leads"] == ["II"] and "record" in written
    table = read_artifacts("multilead-metrics")[0].data
    assert "lgbm-features-ii" in table
    stamp = (metrics / "lgbm-features-ii.json").stat().st_mtime_ns
    again = train_multilead(
        profile="smoke", schemes=["beat"], models=[], lead_sets=["ii"], classical=["lgbm"]
    )
    assert [r["name"] for r in again] == ["lgbm-features-ii"]
    assert (metrics / "lgbm-features-ii.json").stat().st_mtime_ns == stamp  # cached
