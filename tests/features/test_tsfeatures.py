"""Feature sets: tsfresh-compatible values, determinism, the sklearn transformer, the DVC stage."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from ecgops.config import Config
from ecgops.errors import DataError
from ecgops.features.tsfeatures import (
    SPEC_ATTR,
    FeatureExtractor,
    RelevanceSelector,
    build_features,
    compact_feature_names,
    compact_features,
    compact_spec,
    extract_features,
    features_path,
    load_cached_features,
)
from ecgops.schema import BEAT_LEN, SIGNAL_COLUMNS, signals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def beats() -> np.ndarray:
    """Real beats: the PTB and MIT-BIH fixtures (cut from the records), plus edge cases."""
    real = [signals(pd.read_parquet(FIXTURES / f"beats_{t}.parquet")) for t in ("ptb", "mitbih")]
    edge = np.zeros((4, BEAT_LEN), dtype=np.float32)
    edge[0, :3] = [0.9, 0.2, 0.4]  # very short
    edge[1, :90] = 0.5  # constant
    edge[2, 0] = 0.7  # one sample
    edge[3, :] = np.linspace(1.0, 0.01, BEAT_LEN)  # no padding at all
    return np.vstack([*real, edge])


@pytest.fixture(scope="module")
def spec(cfg_module: Config) -> dict:
    return compact_spec(cfg_module)


@pytest.fixture(scope="module")
def cfg_module() -> Config:
    from ecgops.config import load_config

    return load_config(root=Path(__file__).resolve().parents[2], profile="smoke")


def test_compact_is_deterministic_across_chunks_jobs_and_order(beats, spec) -> None:
    reference = compact_features(beats, spec).to_numpy()
    assert np.array_equal(reference, compact_features(beats, spec).to_numpy(), equal_nan=True)
    for n_jobs, chunk in [(1, 1), (1, 7), (2, 33)]:
        again = extract_features(beats, "compact", spec, n_jobs=n_jobs, chunk_size=chunk)
        assert np.array_equal(reference, again.to_numpy(), equal_nan=True), (n_jobs, chunk)
    order = np.random.default_rng(0).permutation(len(beats))
    shuffled = compact_features(beats[order], spec).to_numpy()
    assert np.array_equal(reference[order], shuffled, equal_nan=True)


def test_compact_tsfresh_named_features_equal_tsfresh(beats, spec) -> None:
    """Every ``value__*`` column is a tsfresh feature with tsfresh's value."""
    from tsfresh import extract_features as ts_extract
    from tsfresh.feature_extraction.settings import from_columns

    from ecgops.features.padding import to_long

    ours = compact_features(beats, spec)
    names = [c for c in ours.columns if c.startswith("value__")]
    assert len(names) >= 40
    rows = np.r_[0:4, 110:113, len(beats) - 4 : len(beats)]  # PTB, MIT-BIH and the edge cases
    ids, time, value = to_long(beats[rows])
    long = pd.DataFrame({"id": ids, "time": time, "value": value})
    theirs = ts_extract(
        long,
        column_id="id",
        column_sort="time",
        kind_to_fc_parameters=from_columns(names),
        n_jobs=0,
        disable_progressbar=True,
    )
    np.testing.assert_allclose(
        ours.loc[rows, names].to_numpy(), theirs[names].to_numpy(), rtol=1e-9, atol=1e-12
    )


def test_compact_features_are_finite_on_real_beats(beats, spec) -> None:
    feats = compact_features(beats[:-4], spec)
    assert list(feats.columns) == compact_feature_names(spec)
    assert feats.shape == (len(beats) - 4, len(set(feats.columns)))
    # the true length is a feature and the beat starts at its R-peak
    lengths = BEAT_LEN - (beats[:-4] != 0)[:, ::-1].argmax(axis=1)
    assert np.array_equal(feats["value__length"].to_numpy(), lengths)
    assert np.allclose(feats["morph__r_amplitude"], beats[:-4, 0])
    # NaN only where tsfresh has none either: an autocorrelation lag beyond the beat
    for name in feats.columns:
        finite = np.isfinite(feats[name].to_numpy())
        if name.startswith("value__autocorrelation__lag_"):
            lag = int(name.rsplit("_", 1)[1])
            assert np.array_equal(finite, lengths > lag), name
        else:
            assert finite.all(), name


def test_efficient_set_is_tsfresh_efficient_and_deterministic(beats) -> None:
    two = beats[:2]
    once = extract_features(two, "efficient", chunk_size=1)
    again = extract_features(two, "efficient", chunk_size=2)
    assert once.shape[0] == 2 and once.shape[1] > 700
    assert np.array_equal(once.to_numpy(), again.to_numpy(), equal_nan=True)
    assert "value__quantile__q_0.1" in once.columns


def test_extractor_is_a_stateless_sklearn_transformer(beats, cfg_module) -> None:
    extractor = FeatureExtractor.from_config(cfg_module)
    out = extractor.fit(beats).transform(beats)
    assert out.shape == (len(beats), len(extractor.get_feature_names_out()))
    frame = pd.DataFrame(beats, columns=SIGNAL_COLUMNS)
    assert np.array_equal(out, clone(extractor).transform(frame), equal_nan=True)
    restored = pickle.loads(pickle.dumps(extractor))
    assert np.array_equal(out, restored.transform(beats), equal_nan=True)
    assert not np.isinf(out).any()
    with pytest.raises(ValueError, match="unknown feature set"):
        FeatureExtractor("nope").fit(beats)


def test_relevance_selector_keeps_informative_features() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    informative = y + rng.normal(0, 0.3, 200)
    noise = rng.normal(0, 1, (200, 5))
    constant = np.ones(200)
    X = np.column_stack([noise[:, :2], informative, constant, noise[:, 2:]])
    selector = RelevanceSelector(fdr_level=0.05).fit(X, y)
    assert selector.get_support()[2]
    assert not selector.get_support()[3]
    assert selector.get_support().sum() <= 3
    assert selector.transform(X).shape[1] == selector.get_support().sum()


def test_relevance_selector_tests_the_same_rows_once(monkeypatch) -> None:
    from ecgops.features import tsfeatures

    memo = tsfeatures.ContentMemo(size=8)
    monkeypatch.setattr(tsfeatures, "SELECTION_MEMO", memo)
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 60)
    X = np.column_stack([y + rng.normal(0, 0.3, 180), rng.normal(0, 1, (180, 4))])
    first = RelevanceSelector(fdr_level=0.05).fit(X, y)
    again = RelevanceSelector(fdr_level=0.05).fit(X.copy(), y.copy())  # another model's fit
    assert (memo.misses, memo.hits) == (1, 1)
    assert np.array_equal(first.get_support(), again.get_support()) and first.get_support()[0]
    again.support_[0] = False  # a fitted selector's mask is its own, not the memo's
    assert RelevanceSelector(fdr_level=0.05).fit(X, y).get_support()[0]
    RelevanceSelector(fdr_level=0.01).fit(X, y)  # another parameter
    RelevanceSelector(fdr_level=0.05).fit(X, np.roll(y, 1))  # other labels
    assert memo.misses == 3


def test_relevance_selector_falls_back_to_all_varying_features() -> None:
    X = np.column_stack([np.arange(6.0), np.ones(6)])
    selector = RelevanceSelector().fit(X, np.array([0, 1, 0, 1, 0, 1]))
    assert selector.fallback_
    assert selector.get_support().tolist() == [True, False]


def test_build_features_writes_the_table_and_refuses_missing_input(cfg_smoke: Config) -> None:
    with pytest.raises(DataError, match=r"ptb\.parquet.*not found"):
        build_features(cfg_smoke, "ptb", progress=False)
    processed = cfg_smoke.path("processed")
    processed.mkdir(parents=True)
    (processed / "ptb.parquet").write_bytes((FIXTURES / "beats_ptb.parquet").read_bytes())
    path = build_features(cfg_smoke, "ptb", progress=False)
    assert path == features_path(cfg_smoke, "ptb")
    table = pd.read_parquet(path)
    beats = signals(pd.read_parquet(processed / "ptb.parquet"))
    extractor = FeatureExtractor.from_config(cfg_smoke)
    assert table.attrs[SPEC_ATTR] == extractor.fingerprint()
    assert np.array_equal(table.to_numpy(), extractor.transform(beats), equal_nan=True)
    assert load_cached_features(cfg_smoke, "ptb", extractor) is not None
    other = FeatureExtractor("compact", dict(extractor.spec, phase_points=5))
    assert load_cached_features(cfg_smoke, "ptb", other) is None
    assert not list(path.parent.glob(".*"))  # no temporary file left behind
