"""Per-lead features of the multi-lead fixtures' beats (smoke: leads I, II, V1)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from ecgops.config import Config
from ecgops.data.multilead_schema import lead_columns, lead_tensor
from ecgops.errors import DataError
from ecgops.features.multilead_features import PerLeadFeatures, lead_set_features
from ecgops.features.tsfeatures import FeatureExtractor
from ecgops.schema import BEAT_LEN

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "tests" / "fixtures" / "raw"


@pytest.fixture(scope="module")
def cfg_module() -> Config:
    from ecgops.config import load_config

    return load_config(root=ROOT, profile="smoke")


@pytest.fixture(scope="module")
def table(cfg_module: Config) -> pd.DataFrame:
    """The multi-lead beats of the raw fixtures (cut in memory, nothing written)."""
    from ecgops.data.multilead import collect_multilead

    df, _ = collect_multilead(cfg_module, raw_dir=RAW)
    return df


@pytest.fixture(scope="module")
def extractor(cfg_module: Config) -> FeatureExtractor:
    return FeatureExtractor.from_config(cfg_module)


def test_each_lead_block_is_prefixed_and_in_lead_order(table, extractor, cfg_module) -> None:
    leads = cfg_module.multilead.lead_set("all")
    assert leads == ["I", "II", "V1"]
    feats = lead_set_features(table, leads, extractor)
    names = [str(n) for n in extractor.get_feature_names_out()]
    assert len(feats) == len(table) and feats.shape[1] == len(leads) * len(names)
    expected = [f"{lead}__{name}" for lead in leads for name in names]
    assert list(feats.columns) == expected
    assert "II__value__mean" in feats.columns and "V1__morph__st_level" in feats.columns


def test_lead_ii_block_equals_the_single_lead_features_of_its_beats(table, extractor) -> None:
    feats = lead_set_features(table, ["I", "II", "V1"], extractor)
    lead_ii = lead_tensor(table, ["II"], BEAT_LEN)[:, 0]
    single = extractor.frame(lead_ii)
    block = feats[[f"II__{c}" for c in single.columns]]
    np.testing.assert_array_equal(block.to_numpy(), single.to_numpy())
    only_ii = lead_set_features(table, ["II"], extractor)  # the same block on its own
    np.testing.assert_array_equal(only_ii.to_numpy(), single.to_numpy())
    lead_i = feats[[f"I__{c}" for c in single.columns]].to_numpy()
    assert not np.array_equal(lead_i, block.to_numpy(), equal_nan=True)  # another lead's beats


def test_a_lead_missing_from_the_table_is_a_clear_data_error(table, extractor) -> None:
    short = table.drop(columns=lead_columns(["V1"], BEAT_LEN))
    with pytest.raises(DataError, match=r"ptb12\.parquet: .*lead\(s\) V1; the table holds I, II"):
        lead_set_features(short, ["I", "II", "V1"], extractor, source="data/ptb12.parquet")
    partial = table.drop(columns=["II_x100"])
    with pytest.raises(DataError, match=r"lead\(s\) II"):
        lead_set_features(partial, ["II"], extractor)
    with pytest.raises(DataError, match="no beats"):
        lead_set_features(table.iloc[:0], ["II"], extractor)


def test_the_pipeline_step_reads_leads_side_by_side(table, extractor) -> None:
    leads = ["I", "II", "V1"]
    step = PerLeadFeatures(extractor, leads).fit(None)
    x = lead_tensor(table, leads, BEAT_LEN).reshape(len(table), -1)
    frame = lead_set_features(table, leads, extractor)
    np.testing.assert_array_equal(step.transform(x), frame.to_numpy())
    assert list(step.get_feature_names_out()) == list(frame.columns)
    again = pickle.loads(pickle.dumps(clone(step)))  # a logged pipeline holds it
    np.testing.assert_array_equal(again.transform(x[:5]), frame.to_numpy()[:5])
    assert step.fingerprint() != PerLeadFeatures(extractor, ["II"]).fingerprint()
    with pytest.raises(ValueError, match="3 lead"):
        step.transform(x[:, :-1])
