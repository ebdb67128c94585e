"""The results report is built from metrics files, with tables, study columns and images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ecgops.config import load_config
from ecgops.evaluation.report import build_report, md_table, update_readme
from ecgops.evaluation.results import save_evaluation

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return load_config(root=tmp_path, profile="smoke")


def _predictions(n: int, k: int, accuracy: float, seed: int):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    proba = rng.dirichlet(np.ones(k), size=n)
    hit = rng.random(n) < accuracy
    proba[hit, y[hit]] += 2.0
    return y, proba / proba.sum(axis=1, keepdims=True)


def test_report_has_tables_study_columns_and_images(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    for task, k in (("ptb", 2), ("mitbih", 5)):
        for scheme in ("beat", "patient"):
            for name, family, acc in (("lgbm-raw", "classical", 0.9), ("cnn", "deep", 0.8)):
                y, p = _predictions(60, k, acc, seed=len(name))
                save_evaluation(
                    cfg,
                    task=task,
                    scheme=scheme,
                    name=name,
                    family=family,
                    y_test=y,
                    proba_test=p,
                    y_val=y,
                    proba_val=p,
                    timing={"fit_seconds": 1.5, "predict_beats_per_s": 1000.0},
                )
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nrest\n")
    stale = tmp_path / "reports" / "figures" / "ptb" / "beat" / "gone" / "roc.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier report's figure")

    written = build_report(cfg, readme=readme)

    md = (tmp_path / "reports" / "results.md").read_text()
    html = (tmp_path / "reports" / "results.html").read_text()
    assert "## Results: ptb, beat split" in md and "## Results: mitbih, patient split" in md
    assert "`lgbm-raw`" in md and "study bal acc" in md
    assert "0.982" in md  # the study's LightGBM raw figure sits beside ours
    assert html.count("data:image/png;base64,") >= 8  # ROC, PR, confusion, calibration, ...
    for link in [line for line in md.splitlines() if line.startswith("![")]:
        target = link.split("](", 1)[1].rstrip(")")
        assert (tmp_path / "reports" / target).exists(), target
    assert not stale.exists()  # figures the report no longer shows are removed
    assert readme in written
    text = readme.read_text()
    assert "old" not in text and "### Results: ptb, beat split" in text and text.endswith("rest\n")


def test_md_table_and_readme_markers(tmp_path: Path) -> None:
    table = md_table(["a", "b"], [["1", "2"]])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | 2 |"]
    plain = tmp_path / "R.md"
    plain.write_text("no markers")
    assert update_readme(plain, "x") is False
    assert plain.read_text() == "no markers"
