"""Beat-by-beat evaluation (EC57 matching by wfdb) on real annotations and real annotate output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from fixtures_annotate import ANNOTATE_RAW, REC_128, annotation_model, run_cli

from ecgops.evaluation.beat_matching import GROSS, match_beats, reference_beats, statistics

__all__ = ["annotation_model"]  # the session fixture, used by name

NAMES = ["N", "S", "V", "F", "Q"]
SHIFT = 5  # samples at 128 Hz (39 ms), inside the 150 ms window (19 samples)


def test_matching_counts_relabelled_missed_and_extra_beats(cfg_smoke) -> None:
    samples, labels = reference_beats(cfg_smoke, REC_128)
    v = np.flatnonzero(labels == 2)
    assert len(v) > 2  # the cut of 233 has ventricular beats
    test_labels = labels.copy()
    test_labels[v[0]] = 0  # one V called N
    keep = np.ones(len(samples), dtype=bool)
    keep[v[1]] = False  # one V missed
    test_samples = np.append(samples[keep] + SHIFT, samples[-1] + 100)  # one extra beat (N)
    test_labels = np.append(test_labels[keep], 0)
    cm = match_beats(samples, labels, test_samples, test_labels, 19, 5)
    n_v = len(v)
    assert cm[2, 2] == n_v - 2 and cm[2, 0] == 1 and cm[2, 5] == 1 and cm[5, 0] == 1
    stats = statistics(cm, NAMES)
    assert stats["qrs_se"] == (len(samples) - 1) / len(samples)
    assert stats["qrs_ppv"] == (len(samples) - 1) / len(test_samples)
    assert stats["V_se"] == (n_v - 2) / n_v and stats["V_ppv"] == 1.0
    assert stats["N_ppv"] < 1.0 and np.isnan(stats["Q_se"])
    # beyond the window nothing matches
    far = match_beats(samples, labels, samples + 19, labels, 19, 5)
    assert far[:5, :5].sum() == 0 and far[:5, 5].sum() == len(samples)


def test_evaluate_annotations_over_a_directory(annotation_model, tmp_path) -> None:
    uri, tracking = annotation_model
    for mode, flags in (("reference", ["--reference-peaks"]), ("xqrs", [])):
        out = tmp_path / mode
        args = ["annotate", "--record", str(REC_128), "--out-dir", str(out), "--model", uri]
        assert run_cli(args + flags, tracking).exit_code == 0
        table_file = tmp_path / f"{mode}.csv"
        args = ["evaluate-annotations", "--ref-dir", str(ANNOTATE_RAW), "--test-dir", str(out)]
        result = run_cli([*args, "--out", str(table_file)], tracking)
        assert result.exit_code == 0, result.output
        assert "qrs_se" in result.stdout and GROSS in result.stdout
        table = pd.read_csv(table_file)
        assert list(table["record"]) == [REC_128.name, GROSS]
        row = table.iloc[0]
        assert row["peaks"] == mode
        if mode == "reference":
            assert row["qrs_ppv"] == 1.0 and row["qrs_se"] >= 0.85
        else:  # XQRS on the 128 Hz ECG1 lead: measured 104/104
            assert row["qrs_se"] >= 0.95 and row["qrs_ppv"] >= 0.95
        saved = json.loads(table_file.with_suffix(".json").read_text())
        assert saved["classes"] == NAMES and saved["window_s"] == 0.15
        assert np.asarray(saved["confusion"]).shape == (6, 6)
