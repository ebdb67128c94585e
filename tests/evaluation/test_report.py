"""The results report is built from metrics files: summary per task first (champion, gate-set
intervals, study and published figures, one chart), the AAMI table, the registry decisions as a
table, then the details; and it renders in a real headless browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ecgops.config import Config, load_config
from ecgops.evaluation.metrics import aami_from_confusion
from ecgops.evaluation.report import build_report, build_sections, md_table, update_readme
from ecgops.evaluation.report_champions import champion_from_tags, registry_champions
from ecgops.evaluation.report_summary import summary_section
from ecgops.evaluation.results import (
    _flat_metrics,
    load_all_metrics,
    metrics_path,
    save_evaluation,
)
from ecgops.io import write_json
from ecgops.registry.gate import compare
from ecgops.registry.promote import Decision, _interval_tags, decision_file

ROOT = Path(__file__).resolve().parents[2]
MODELS = (("lgbm-raw", "classical", 0.9), ("cnn", "deep", 0.8))
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_TIMEOUT_S = 120
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the project's own registry
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return load_config(root=tmp_path, profile="smoke")


def _predictions(n: int, k: int, accuracy: float, seed: int):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    proba = rng.dirichlet(np.ones(k), size=n)
    hit = rng.random(n) < accuracy
    proba[hit, y[hit]] += 2.0
    return y, proba / proba.sum(axis=1, keepdims=True)


def _decision(cfg: Config, task: str) -> Decision:
    """A refused promotion with real bootstrap intervals over 6 patients."""
    k = len(cfg.class_names(task))
    y, ours = _predictions(120, k, 0.7, seed=1)
    _, theirs = _predictions(120, k, 0.8, seed=2)
    groups = np.arange(120) % 6
    comparison = compare(y, groups, ours, theirs, "balanced_accuracy", cfg.registry.bootstrap)
    return Decision(
        task=task,
        model=f"ecgops-{task}",
        action="refused",
        reason="not better on the gate set",
        challenger="2",
        champion="1",
        metric="balanced_accuracy",
        challenger_metrics={"balanced_accuracy": comparison.challenger.estimate},
        champion_metrics={"balanced_accuracy": comparison.champion.estimate},
        eval_data="gate set: 6 patients",
        comparison=comparison.to_dict(),
    )


def write_outputs(cfg: Config) -> None:
    """Real-shaped outputs: metrics of two models per task and split, one decision per task."""
    for task in ("ptb", "mitbih"):
        k = len(cfg.class_names(task))
        for scheme in ("beat", "patient"):
            for name, family, acc in MODELS:
                acc = acc if scheme == "beat" else acc - 0.2  # new patients are harder
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
        decision = _decision(cfg, task)
        write_json(decision.to_dict(), decision_file(cfg, task, decision.model))


@pytest.fixture
def report_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    cfg = _project(tmp_path, monkeypatch)
    write_outputs(cfg)
    return cfg


def test_mitbih_metrics_carry_aami_figures_per_part(report_cfg: Config) -> None:
    record = json.loads(metrics_path(report_cfg, "mitbih", "patient", "cnn").read_text())
    assert set(record["aami"]) == {"test", "val"}
    names = report_cfg.class_names("mitbih")
    expected = aami_from_confusion(np.array(record["confusion_matrix"]), names)
    assert record["aami"]["test"] == expected  # JSON keeps the floats exactly
    assert 0 < record["aami"]["test"]["mean_sensitivity"] <= 1
    assert set(record["aami"]["test"]) >= {"N", "S", "V", "F", "accuracy", "five_class"}
    flat = _flat_metrics(record)  # what MLflow gets
    assert flat["aami_test_mean_sensitivity"] == record["aami"]["test"]["mean_sensitivity"]
    assert flat["aami_val_S_ppv"] == record["aami"]["val"]["S"]["ppv"]
    ptb = json.loads(metrics_path(report_cfg, "ptb", "patient", "cnn").read_text())
    assert "aami" not in ptb


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_report_opens_with_summaries_then_details(report_cfg: Config) -> None:
    readme = report_cfg.root / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nrest\n")
    stale = report_cfg.root / "reports" / "figures" / "ptb" / "beat" / "gone" / "roc.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier report's figure")

    written = build_report(report_cfg, readme=readme)

    md = (report_cfg.root / "reports" / "results.md").read_text()
    order = [
        "## Summary: ptb",
        "## Summary: mitbih",
        "## MIT-BIH on new patients: AAMI classes (DS1 → DS2)",
        "## Registry decisions",
        "## Results: ptb, beat split",
        "## Calibration",
        "## Provenance",
    ]
    positions = [md.index(title) for title in order]
    assert positions == sorted(positions)
    ptb = _section(md, "Summary: ptb")
    assert "Martin et al. 2021" in ptb and "| 0.842 |" in ptb and "| 0.784 |" in ptb
    assert "| 0.830 |" in ptb  # Martin's balanced accuracy: (Se + Sp) / 2
    assert "Strodthoff & Strodthoff 2019" in ptb and "| 0.933 |" in ptb
    assert "new patients (patient-split test" in ptb and "| 0.992 |" in ptb  # the study's cnn
    assert "![ptb: every model on both splits](figures/report/models-ptb.png)" in ptb
    aami = _section(md, "MIT-BIH on new patients: AAMI classes (DS1 → DS2)")
    assert "inter-record" in aami and "201" in aami and "Q" in aami
    for figure in ("0.868", "0.832", "0.703", "0.945"):
        assert figure in aami
    assert "| `cnn` | none |" in aami and "| S Se | S +P |" in aami
    registry = _section(md, "Registry decisions")
    assert "| `ecgops-ptb` | **refused** | 2 | 1 | balanced_accuracy |" in registry
    assert "{" not in registry  # a table, not a printed dict
    assert "Δ bal acc (ours, smoke profile)" in _section(md, "Results: ptb, beat split")
    assert "Δ" not in _section(md, "Results: ptb, patient split")
    assert "study bal acc" not in _section(md, "Results: mitbih, patient split")
    for link in [line for line in md.splitlines() if line.startswith("![")]:
        target = link.split("](", 1)[1].rstrip(")")
        assert (report_cfg.root / "reports" / target).exists(), target
    assert not stale.exists()  # figures the report no longer shows are removed
    assert readme in written
    text = readme.read_text()
    assert "old" not in text and text.endswith("rest\n")
    assert "### Summary: ptb" in text and "### MIT-BIH on new patients" in text
    assert "### Registry decisions" in text


def test_champion_gate_figures_come_from_the_version_tags(report_cfg: Config) -> None:
    decision = _decision(report_cfg, "ptb")
    estimate = decision.comparison["challenger"]["estimate"]
    tags = {
        "run_id": "abc",
        "run_name": "cnn-beat",
        "select_scheme": "beat",
        "gate.role": "challenger",
        "gate.eval_data": decision.eval_data,
        "gate.challenger.balanced_accuracy": f"{estimate:.6f}",
        **_interval_tags(decision),
    }
    champion = champion_from_tags("ptb", "ecgops-ptb", "2", tags)
    assert (champion.name, champion.scheme, champion.kind) == ("cnn", "beat", "morphology")
    low = decision.comparison["challenger"]["low"]
    assert champion.gate["balanced_accuracy_low"] == pytest.approx(low, abs=1e-6)
    records = load_all_metrics(report_cfg)
    section = summary_section("ptb", records, [champion], ["healthy", "MI"], None)
    gate_row = next(line for line in section.markdown.splitlines() if "sealed gate set" in line)
    assert f"{estimate:.3f} [{low:.3f}, " in gate_row and "bootstrap intervals over 6" in gate_row
    assert "the configuration's patient-split run" in section.markdown  # trained on beat


def test_registry_champion_is_read_from_a_real_registry(report_cfg: Config) -> None:
    from mlflow import MlflowClient

    assert registry_champions(report_cfg, "ptb") == []  # no registry: nothing, nothing created
    assert not (report_cfg.root / "mlflow.db").exists()
    uri = report_cfg.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("ecgops-ptb")
    source = report_cfg.root / "model"
    source.mkdir()
    tags = {"run_name": "lgbm-raw-patient", "select_scheme": "patient", "gate.role": "champion"}
    tags["gate.champion.balanced_accuracy"] = "0.750000"
    version = client.create_model_version("ecgops-ptb", source.as_uri(), tags=tags)
    client.set_registered_model_alias("ecgops-ptb", "champion", version.version)

    (champion,) = registry_champions(report_cfg, "ptb")
    assert champion.name == "lgbm-raw" and champion.gate == {"balanced_accuracy": 0.75}
    md = next(s for s in build_sections(report_cfg) if s.anchor == "summary-ptb").markdown
    assert "registry champion: `ecgops-ptb` version 1" in md and "| 0.750 |" in md


def test_md_table_and_readme_markers(tmp_path: Path) -> None:
    table = md_table(["a", "b"], [["1", "2"]])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | 2 |"]
    plain = tmp_path / "R.md"
    plain.write_text("no markers")
    assert update_readme(plain, "x") is False
    assert plain.read_text() == "no markers"


def _chromium(*args: str) -> subprocess.CompletedProcess:
    command = [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=True
    )


@pytest.mark.skipif(
    BROWSER is None,
    reason="no headless browser: install Debian's `chromium` (scripts/test.sh does, as root)",
)
def test_html_report_renders_in_headless_chromium(report_cfg: Config) -> None:
    build_report(report_cfg, readme=report_cfg.root / "no-readme.md")
    page = (report_cfg.root / "reports" / "results.html").resolve()
    dom = _chromium("--dump-dom", page.as_uri()).stdout

    assert '<section id="summary-ptb" class="summary">' in dom
    assert '<section id="summary-mitbih" class="summary">' in dom
    assert dom.index('id="summary-ptb"') < dom.index('id="aami"') < dom.index('id="registry"')
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', dom)
    assert len(images) >= 2  # at least the two model charts
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    assert dom.count("<table>") >= 8  # 2 summaries, AAMI, registry, 4 result tables, ...
    shot = report_cfg.root / "screenshot.png"
    _chromium("--hide-scrollbars", "--window-size=1300,2400", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes().startswith(PNG_MAGIC)


def _multilead_outputs(cfg: Config) -> None:
    """Real-shaped ptb12 metrics of one net on two lead sets: beat figures, grouped CV and the
    record-level blocks the training writes (record_block / record_cv_summary over 12 records
    of 8 beats each, one label per record)."""
    from ecgops.evaluation.metrics import classification_metrics
    from ecgops.training.record_level import record_block, record_cv_summary
    from ecgops.training.run import cv_summary

    for lead_set, leads, acc in (("all", ["I", "II", "V1"], 0.9), ("ii", ["II"], 0.7)):
        y, p = _predictions(96, 2, acc, seed=len(leads))  # y = i % 2: record i % 12's label
        beats = (p, y, np.array([f"r{i % 12}" for i in range(96)]))
        blocks = [record_block(beats, beats, cfg.multilead.record, seed) for seed in (0, 1)]
        fold = classification_metrics(y, p)
        save_evaluation(
            cfg,
            task="ptb12",
            scheme="patient",
            name=f"cnn-{lead_set}",
            family="deep",
            y_test=y,
            proba_test=p,
            y_val=y,
            proba_val=p,
            timing={"fit_seconds": 12.5, "predict_beats_per_s": 1000.0},
            n={"train": 200, "val": 96, "test": 96},
            cv={**cv_summary([fold, fold]), "record": record_cv_summary(blocks)},
            extra={
                "model": {"arch": "cnn", "lead_set": lead_set, "leads": leads},
                "input": {"kind": "multilead", "lead_set": lead_set, "leads": leads},
                "record": blocks[0],
            },
        )


def _table_rows(markdown: str) -> tuple[str, list[list[str]]]:
    """The header line and the cells of each row of the first Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return lines[0], [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_multilead_table_beside_single_lead_and_published_rows(report_cfg: Config) -> None:
    _multilead_outputs(report_cfg)
    sections = build_sections(report_cfg)
    anchors = [s.anchor for s in sections]
    assert anchors.index("aami") < anchors.index("multilead") < anchors.index("registry")
    md = next(s for s in sections if s.anchor == "multilead").markdown
    header, rows = _table_rows(md)
    assert header == (
        "| input | model | level | test n | test bal acc | test AUROC | "
        "bal acc, grouped CV (mean ± std) | AUROC, grouped CV (mean ± std) | train s |"
    )
    levels = [r[2] for r in rows if r[0] == "`ii` (II)"]
    assert levels[:3] == ["beat", "record mean", "record learned"]
    assert levels[3].startswith("record chosen on validation: ")
    first = [r[0] for r in rows]
    assert first.index("`ii` (II)") < first.index("`all` (I, II, V1)")  # fewest leads first
    record = json.loads(metrics_path(report_cfg, "ptb12", "patient", "cnn-all").read_text())
    beat = next(r for r in rows if r[0] == "`all` (I, II, V1)" and r[2] == "beat")
    cv = record["cv"]
    assert beat[1] == "`cnn`" and beat[3] == "96" and beat[8] == "12.5"
    assert beat[4] == f"{record['test']['balanced_accuracy']:.3f}"
    assert (
        beat[6]
        == f"{cv['balanced_accuracy_mean']:.3f} ± {cv['balanced_accuracy_std']:.3f} (2 folds)"
    )
    mean = next(r for r in rows if r[0] == "`all` (I, II, V1)" and r[2] == "record mean")
    assert mean[3] == "12" and mean[5] == f"{record['record']['mean']['auroc']:.3f}"
    rcv = cv["record"]
    assert mean[6].startswith(f"{rcv['mean_balanced_accuracy_mean']:.3f} ± ")
    learned = next(r for r in rows if r[0] == "`all` (I, II, V1)" and r[2] == "record learned")
    assert learned[4] == f"{record['record']['learned']['balanced_accuracy']:.3f}"
    chosen = next(r for r in rows if r[0] == "`all` (I, II, V1)" and r[2].startswith("record ch"))
    assert chosen[2].endswith(
        f"{record['record']['selected']} (folds: {', '.join(rcv['selected'])})"
    )
    assert chosen[6].startswith(f"{rcv['balanced_accuracy_mean']:.3f} ± ")
    single = [r for r in rows if r[0] == "lead II (study table)"]
    assert {r[1] for r in single} == {"`lgbm-raw`", "`cnn`"} and {r[2] for r in single} == {"beat"}
    published = {r[1].split(" (")[0]: r for r in rows if r[2] == "published"}
    assert published["_Martin et al. 2021_"][4] == "0.830"
    assert published["_Strodthoff & Strodthoff 2019_"][4] == "0.915"
    davarmanesh = [r for r in rows if r[1].startswith("_Davarmanesh")]
    assert [(r[0], r[5]) for r in davarmanesh] == [("I", "0.920"), ("12", "0.990")]


def test_multilead_champion_kind_and_record() -> None:
    from ecgops.evaluation.report_champions import record_of

    tags = {"run_name": "cnn-all-patient", "select_scheme": "patient", "run_id": "r1"}
    champion = champion_from_tags("ptb", "ecgops-ptb-multilead", "3", tags)
    assert champion.kind == "multilead" and champion.name == "cnn-all"
    assert champion_from_tags("mitbih", "ecgops-mitbih-context", "1", tags).kind == "context"
    assert champion_from_tags("ptb", "ecgops-ptb", "1", tags).kind == "morphology"
    records = [
        {"task": "ptb", "scheme": "patient", "name": "cnn-all"},
        {"task": "ptb12", "scheme": "patient", "name": "cnn-all", "mlflow_run_id": "r1"},
    ]
    assert record_of(records, champion, "patient") is records[1]
