"""The committed results cite data versions that the committed dvc.lock backs (issue 16).

The README's results block (written by ``ecgops report``) names the md5 of each beat table it
was computed from; ``dvc.lock`` records the md5 of ``data/processed/{task}.parquet`` as the
``build`` stage wrote it. They must agree, so a reader can check which data the figures come from.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = re.compile(r"data versions \(md5 of the beat tables, as in dvc\.lock\): (.+)")
PAIR = re.compile(r"`(\w+): ([0-9a-f]{32})`")


def lock_versions() -> dict[str, str]:
    """task -> md5 of its beat table, from the build stage outs of dvc.lock."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    out: dict[str, str] = {}
    for name, stage in lock["stages"].items():
        if not name.startswith("build"):
            continue
        for item in stage.get("outs", []):
            found = re.fullmatch(r"data/processed/(\w+)\.parquet", item["path"])
            if found:
                out[found.group(1)] = item["md5"]
    return out


def cited_versions(text: str) -> dict[str, str]:
    """task -> md5 as the report's provenance line cites it."""
    line = VERSIONS.search(text)
    assert line, "the results block has no data-versions line"
    return dict(PAIR.findall(line.group(1)))


def test_readme_results_cite_the_data_versions_of_dvc_lock() -> None:
    cited = cited_versions((ROOT / "README.md").read_text())
    locked = lock_versions()
    assert cited, "no data version cited"
    for task, md5 in cited.items():
        assert locked.get(task) == md5, f"{task}: README {md5}, dvc.lock {locked.get(task)}"


def test_the_full_report_cites_the_same_versions() -> None:
    report = ROOT / "reports" / "results.md"
    assert cited_versions(report.read_text()) == cited_versions((ROOT / "README.md").read_text())
