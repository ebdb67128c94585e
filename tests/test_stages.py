"""The stage table: dvc.yaml is generated from it, and both runners rerun the same stages.

The deps test changes ``deep.imbalance`` and asks each runner what reruns: DVC through the
committed dvc.yaml (a stage reruns when one of its param-file deps, the resolved JSON that
``ecgops config --sections-dir`` writes, changes content) and Prefect through the real cache
policies of the flows' tasks (a stage reruns when its task's cache key changes).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from ecgops import stages as S
from ecgops.codegraph import PROJECT_DIR, closure, project_modules
from ecgops.config import Config, write_sections
from ecgops.dvc_yaml import dvc_document, dvc_yaml
from ecgops.orchestration.caching import InputsAndFiles

REPO = PROJECT_DIR
FLOW_MODULES = (
    "flows.ingest",
    "flows.train_classical",
    "flows.train_deep",
    "flows.train_multilead",
    "flows.pretrain_and_transfer",
    "flows.evaluate_and_register",
    "flows.pipeline",
)


def committed() -> dict[str, Any]:
    """The committed dvc.yaml, parsed."""
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_committed_dvc_yaml_is_the_generated_one() -> None:
    text = dvc_yaml(REPO)
    assert (REPO / "dvc.yaml").read_text() == text, "run `ecgops stages dvc-yaml`"
    assert yaml.safe_load(text) == dvc_document(REPO)  # the emitter writes what it means


def test_dvc_yaml_keeps_stage_names_commands_and_templates() -> None:
    stages = committed()["stages"]
    assert list(stages) == [s.name for s in S.STAGES if s.dvc]
    build = stages["build"]
    assert build["foreach"] == "${pipeline.tasks}"
    assert build["do"]["cmd"] == "ecgops data build --task ${item}"
    assert build["do"]["outs"] == ["data/processed/${item}.parquet"]
    classical = stages["classical-ptb"]
    assert classical["matrix"]["model"] == "${pipeline.classical.ptb}"
    assert classical["cmd"] == (
        "ecgops train classical --task ptb --scheme ${item.scheme} --model ${item.model}"
        " --input ${item.input}"
    )
    assert stages["finetune-scratch"]["do"]["metrics"] == [
        {"outputs/metrics/ptb/${item}/transfer-scratch.json": {"cache": False}}
    ]
    params_outs = [next(iter(o)) for o in stages["params"]["outs"]]
    used = {d for body in stages.values() for d in _deps(body) if d.startswith("outputs/params/")}
    assert used <= set(params_outs)  # every param-file dep is written by the params stage


def _deps(body: dict[str, Any]) -> list[str]:
    return (body.get("do") or body)["deps"]


def test_transfer_stages_depend_on_what_they_run() -> None:
    stages = committed()["stages"]
    for name in ("pretrain", "finetune", "finetune-scratch"):
        deps = _deps(stages[name])
        assert "outputs/params/deep.json" in deps and "outputs/params/transfer.json" in deps
        assert "ecgops/training/engine.py" in deps
        assert any(d in deps for d in ("ecgops/models", "ecgops/models/encoder.py"))


def _covered(file: Path, paths: tuple[str, ...]) -> bool:
    rel = file.relative_to(REPO)
    return any(rel == Path(p) or Path(p) in rel.parents for p in paths)


@pytest.mark.parametrize("entry", [s for s in S.STAGES if s.entry], ids=lambda s: s.name)
def test_code_deps_are_the_import_closure(entry: S.Stage) -> None:
    modules = project_modules()
    needed = closure(entry.entry)
    code = entry.code()
    assert all(_covered(modules[m], code) for m in needed)
    for path in code:  # nothing listed that the stage does not import
        assert any(_covered(modules[m], (path,)) for m in needed), path


def test_stages_run_by_one_task_agree() -> None:
    for task in {s.task for s in S.STAGES if s.task}:
        group = S.for_task(task)
        assert len({(s.sections, s.entry, s.prefect_reads) for s in group}) == 1, task


def flow_tasks() -> dict[str, Any]:
    """Every cached Prefect task of the flows, by task name."""
    from prefect import Task

    found = {}
    for name in FLOW_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            if isinstance(obj, Task) and isinstance(obj.cache_policy, InputsAndFiles):
                found[obj.name] = obj
    return found


def test_every_cached_flow_task_takes_its_policy_from_the_table() -> None:
    tasks = flow_tasks()
    assert set(tasks) == {s.task for s in S.STAGES if s.task}
    for name, task in tasks.items():
        policy, expected = task.cache_policy, InputsAndFiles.for_stage(name)
        assert (policy.sections, policy.code) == (expected.sections, expected.code)


def example_inputs(stage: S.Stage, cfg: Config) -> dict[str, Any]:
    """One call of a stage: the first value of each matrix list (as params.yaml gives them)."""
    params = cfg.model_dump(mode="json")
    inputs: dict[str, Any] = dict(stage.fixed)
    for name, source in stage.matrix:
        value: Any = params
        for key in source.split("."):
            value = value[key]
        inputs[name] = value[0]
    return {"cfg": cfg, **inputs}


def prefect_reruns(before: Config, after: Config) -> set[str]:
    """The stages whose Prefect cache key changes from ``before`` to ``after``."""
    rerun = set()
    for name, task in flow_tasks().items():
        ctx = SimpleNamespace(task=task, result_store=None)
        for stage in S.for_task(name):
            if not stage.dvc:
                continue
            keys = {
                task.cache_policy.compute_key(ctx, example_inputs(stage, cfg), {})
                for cfg in (before, after)
            }
            if len(keys) == 2:
                rerun.add(stage.name)
    return rerun


def dvc_reruns(before: Config, after: Config, tmp_path: Path) -> set[str]:
    """The stages of dvc.yaml with a param-file dep whose resolved content changes."""
    old = write_sections(before, tmp_path / "before")
    new = write_sections(after, tmp_path / "after")
    changed = {
        f"outputs/params/{a.name}"
        for a, b in zip(old, new, strict=True)
        if a.read_bytes() != b.read_bytes()
    }
    return {
        name
        for name, body in committed()["stages"].items()
        if not body.get("always_changed") and changed & set(_deps(body))
    }


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"deep": {"imbalance": "balanced_sampler"}},
            {"deep-ptb", "deep-mitbih", "multilead", "pretrain", "finetune", "finetune-scratch"},
        ),
        ({"transfer": {"lr": 0.002}}, {"pretrain", "finetune", "finetune-scratch"}),
        ({"classical": {"imbalance": "none"}}, {"classical-ptb", "classical-mitbih"}),
    ],
    ids=["deep.imbalance", "transfer.lr", "classical.imbalance"],
)
def test_a_params_change_reruns_the_same_stages_in_both_runners(
    cfg_smoke_factory, tmp_path: Path, override: dict[str, Any], expected: set[str]
) -> None:
    before, after = cfg_smoke_factory(), cfg_smoke_factory(**override)
    dvc = dvc_reruns(before, after, tmp_path)
    prefect = prefect_reruns(before, after)
    assert dvc == prefect == expected
