"""The reliability suite and the dependency audit run in CI (issue #10).

CI (``.github/workflows/ci.yml``) runs ``scripts/test.sh`` (as ``.ci/run`` does): ruff, then
pytest over ``tests/`` (this folder included, integration tests too), then ``pip-audit``.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI_WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _workflow() -> dict:
    return yaml.safe_load(CI_WORKFLOW.read_text())


def test_ci_runs_the_whole_test_suite_with_this_folder_and_integration_tests() -> None:
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    runs = [str(step.get("run", "")) for step in _ci_steps()]
    assert any(re.fullmatch(r"bash scripts/test\.sh", r.strip()) for r in runs), runs
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "test.sh").read_text()
    pytest_lines = [line for line in script.splitlines() if "-m pytest" in line]
    assert pytest_lines, script
    for line in pytest_lines:  # no marker expression (-m) after "python -m pytest"
        assert " -m " not in line.split("-m pytest", 1)[1], line
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert ini["testpaths"] == ["tests"]
    assert "-m " not in ini.get("addopts", "")  # no marker deselects integration tests


def _ci_steps() -> list[dict]:
    workflow = _workflow()
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _audit_step() -> dict:
    steps = [s for s in _ci_steps() if "pip-audit" in str(s.get("run", ""))]
    assert len(steps) == 1, "no (or several) pip-audit steps in .github/workflows/ci.yml"
    return steps[0]


def test_ci_audits_the_locked_dependencies_with_a_pinned_pip_audit() -> None:
    run = _audit_step()["run"]
    assert re.search(r"pip-audit\s.*-r\s+requirements\.lock", run), run
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pip-audit==" in " ".join(dev["dev"])  # the auditor itself is pinned


def test_a_vulnerable_dependency_fails_ci() -> None:
    step = _audit_step()
    assert not step.get("continue-on-error", False)
    assert "|| true" not in step["run"] and "|| :" not in step["run"]


@pytest.mark.slow
def test_a_run_that_collects_no_test_fails() -> None:
    """pytest's exit 5 (nothing collected) must fail the README's test command, so CI can
    never pass with nothing tested. Runs the real script (setup is a no-op when installed)."""
    env = {**os.environ, "CI": "true"}
    done = subprocess.run(
        ["bash", "scripts/test.sh", "tests/reliability/test_ci.py", "-k", "no_test_has_this_name"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 5, done.stdout[-2000:] + done.stderr[-2000:]
    assert "nothing was checked" in done.stderr
