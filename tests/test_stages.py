"""The stage table: dvc.yaml is generated from it, and both runners rerun the same stages.

The deps tests change a param (``deep.imbalance``, ``classical.lgbm.n_estimators``,
``deep.archs.transformer``...) and ask each runner which calls rerun: DVC through real
``dvc status`` on the committed dvc.yaml's templates (in a scratch DVC repo whose stages keep
their param-file deps, the files ``ecgops config --sections-dir`` writes) and Prefect through
the real cache policies of the flows' tasks (a call reruns when its cache key changes), over
the same calls: every matrix item of params.yaml's lists, named as DVC names them.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import networkx
import pytest
import yaml

from ecgops import stages as S
from ecgops.code_files import code_payload, coded_stages, source_files, write_code_files
from ecgops.codegraph import PROJECT_DIR, closure, project_modules
from ecgops.config import PARAMS_FILE, Config, load_params
from ecgops.dvc_yaml import DVC_FILES, MAIN_FILE, SOURCES_FILE, dvc_document, dvc_file, dvc_yaml
from ecgops.orchestration.caching import InputsAndFiles
from ecgops.param_files import payloads, write_sections

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
PARAM_FILES = "outputs/params/"
"""Where the params files lie (the ``params`` stage's outs, relative to the project)."""


def committed(file: Path = MAIN_FILE) -> dict[str, Any]:
    """A committed dvc.yaml, parsed."""
    return yaml.safe_load((REPO / file).read_text())


@pytest.mark.parametrize("file", DVC_FILES, ids=str)
def test_committed_dvc_yaml_is_the_generated_one(file: Path) -> None:
    text = dvc_yaml(REPO, file)
    assert (REPO / file).read_text() == text, "run `ecgops stages dvc-yaml`"
    assert yaml.safe_load(text) == dvc_document(REPO, file)  # the emitter writes what it means


def test_dvc_yaml_keeps_stage_names_commands_and_templates() -> None:
    stages = committed()["stages"]
    sources = committed(SOURCES_FILE)["stages"]
    assert [*sources, *stages] == [s.name for s in S.STAGES if s.dvc]
    assert set(sources) == {s.name for s in S.STAGES if s.always_changed} == {"params", "raw"}
    assert all(body["wdir"] == "../.." for body in sources.values())  # project-relative paths
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
    assert "outputs/params/classical/${item.model}.json" in classical["deps"]
    assert "outputs/params/deep/archs/${item.model}.json" in stages["deep-mitbih"]["deps"]


def test_a_stage_dvc_always_reruns_rewrites_only_its_small_lockfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``dvc repro`` runs ``params`` (real ``ecgops config``); DVC rewrites the lockfile
    of the stage it ran, so the main dvc.lock stays untouched and the stage's entry lands in
    the sources lockfile. The stage is also in the graph of a plain ``dvc repro`` in the root:
    the main file's stages depend on its outputs."""
    from dvc.repo import Repo

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / PARAMS_FILE).write_text((REPO / PARAMS_FILE).read_text())
    for file in DVC_FILES:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(dvc_yaml(REPO, file))
    main_lock = tmp_path / "dvc.lock"
    main_lock.write_text("schema: '2.0'\nstages: {}\n")
    monkeypatch.chdir(tmp_path)  # DVC names stages relative to the working directory
    Repo.init(tmp_path, no_scm=True)
    with Repo(tmp_path) as repo:
        repo.reproduce(f"{SOURCES_FILE}:params", single_item=True)
        build = next(st for st in repo.index.stages if st.addressing == "build@ptb")
        upstream = {st.addressing for st in networkx.descendants(repo.index.graph, build)}
    assert main_lock.read_text() == "schema: '2.0'\nstages: {}\n"
    lock = yaml.safe_load((tmp_path / SOURCES_FILE).with_name("dvc.lock").read_text())
    assert list(lock["stages"]) == ["params"]
    assert (tmp_path / PARAM_FILES / "deep.json").is_file()  # the command ran
    assert f"{SOURCES_FILE}:params" in upstream and f"{SOURCES_FILE}:raw" in upstream


def test_every_param_file_dep_is_written_by_the_params_stage(dvc_repo: Any) -> None:
    outs = [next(iter(o)) for o in committed(SOURCES_FILE)["stages"]["params"]["outs"]]
    written = {f"outputs/params/{name}.json" for name in payloads(load_params(REPO / PARAMS_FILE))}
    written |= {f"outputs/code/{st.name}.json" for st in coded_stages()}
    assert set(outs) <= written
    used = {  # resolved by DVC: ${item.model} filled in
        str(d.def_path) for st in dvc_repo.index.stages for d in st.deps
    }
    assert "outputs/params/deep/archs/cnn+rr.json" in used  # a context net: its own file
    assert used <= set(outs)


def _deps(body: dict[str, Any]) -> list[str]:
    return (body.get("do") or body)["deps"]


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_profiles_recorded_by_dvc_keep_the_matrix_lists(profile: str) -> None:
    """dvc.yaml's matrices read params.yaml's base lists: a profile that the main job records
    with ``dvc commit`` (quick, full) must run exactly those, or the commit misses outputs."""
    from functools import reduce

    from ecgops.config import load_config

    base = load_params(PROJECT_DIR / PARAMS_FILE)
    resolved = load_config(profile=profile).model_dump(mode="json")
    sources = {src for st in S.STAGES if st.dvc for _, src in st.matrix}
    for src in sorted(sources):
        keys = src.split(".")
        want = reduce(lambda d, k: d[k], keys, base)
        got = reduce(lambda d, k: d[k], keys, resolved)
        assert got == want, f"profile {profile} changes {src}: {got} != {want}"


def test_transfer_stages_depend_on_what_they_run() -> None:
    stages = committed()["stages"]
    for name in ("pretrain", "finetune", "finetune-scratch"):
        deps = _deps(stages[name])
        assert "outputs/params/deep.json" in deps and "outputs/params/transfer.json" in deps
        assert not [d for d in deps if d.startswith("outputs/params/deep/")]  # no deep.archs
        assert f"outputs/code/{name}.json" in deps
        code = code_payload(S.stage(name).code())
        assert "ecgops/training/engine.py" in code and "ecgops/models/encoder.py" in code


def test_a_stage_code_file_hashes_the_sources_it_runs_and_no_others(cfg_smoke) -> None:
    """One code dep per stage (not its ~40 sources), with the same effect: editing a net
    changes the deep stages' files, never the classical ones' (so DVC reruns only those)."""
    written = {p.stem: json.loads(p.read_text())["code"] for p in write_code_files(cfg_smoke)}
    assert set(written) == {st.name for st in coded_stages()}
    for st in coded_stages():
        deps = _deps(committed(dvc_file(st))["stages"][st.name])
        assert f"outputs/code/{st.name}.json" in deps
        assert not [d for d in deps if d.startswith("ecgops/")]  # the sources are in the file
        files = written[st.name]
        assert {Path(f) for f in files} == {f.relative_to(REPO) for f in source_files(st.code())}
        some = next(iter(files))
        assert files[some] == hashlib.md5((REPO / some).read_bytes()).hexdigest()
    net = "ecgops/models/nets/transformer.py"
    assert net in written["deep-ptb"] and net in written["multilead"]
    assert net not in written["classical-ptb"] and net not in written["build"]


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
        assert len({(s.sections, s.model_params, s.entry, s.prefect_reads) for s in group}) == 1


def test_model_params_split_off_their_sections_and_name_a_matrix_parameter() -> None:
    for st in S.STAGES:
        for split in st.model_params:
            assert split.section in st.sections, st.name
            assert split.param in {name for name, _ in st.matrix} | set(st.fixed), st.name
    assert S.stage("classical-ptb").model_params == (S.CLASSICAL_MODEL_PARAMS,)
    assert S.stage("multilead").model_params == (S.NET_PARAMS,)
    assert S.stage("pretrain").model_params == ()


def test_model_files_hold_their_entry_and_the_section_file_the_rest(cfg_smoke) -> None:
    every = payloads(cfg_smoke.model_dump(mode="json"))
    classical, deep = every["classical"]["classical"], every["deep"]["deep"]
    assert not {"lr", "rf", "lgbm"} & set(classical) and "imbalance" in classical
    assert "archs" not in deep and "imbalance" in deep
    assert every["classical/lgbm"]["classical.lgbm"] == cfg_smoke.classical.lgbm.model_dump()
    cnn = every["deep/archs/cnn"]["deep.archs.cnn"]
    assert cnn == cfg_smoke.deep.archs["cnn"]
    assert every["deep/archs/cnn+rr"]["deep.archs.cnn"] == cnn  # cnn+rr is the cnn's arch
    assert every["deep/archs/cnn"]["seed"] == cfg_smoke.seed


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
        assert (policy.sections, policy.model_params, policy.code) == (
            expected.sections,
            expected.model_params,
            expected.code,
        )


@dataclass(frozen=True)
class Call:
    """One call of a cached stage: DVC's address for it, its stage and its parameters."""

    name: str
    stage: S.Stage
    params: dict[str, Any]


def _lookup(params: dict[str, Any], dotted: str) -> list[Any]:
    value: Any = params
    for key in dotted.split("."):
        value = value[key]
    return list(value)


def cached_by_both(st: S.Stage) -> bool:
    """A stage both runners skip when its inputs are unchanged (DVC stage, Prefect task, not
    always rerun)."""
    return bool(st.dvc and st.task) and not st.always_changed


def calls() -> list[Call]:
    """Every call of the stages both runners cache: each item of params.yaml's lists.

    Named as DVC names a matrix item (``classical-ptb@beat-lgbm-raw``); DVC expands the same
    lists (the templates of dvc.yaml read params.yaml), checked by a test below.
    """
    params = load_params(REPO / PARAMS_FILE)
    found = []
    for st in S.STAGES:
        if not cached_by_both(st):
            continue
        names = [name for name, _ in st.matrix]
        for values in itertools.product(*(_lookup(params, src) for _, src in st.matrix)):
            address = f"{st.name}@{'-'.join(map(str, values))}" if values else st.name
            found.append(Call(address, st, {**st.fixed, **dict(zip(names, values, strict=True))}))
    return found


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A scratch DVC repo: the committed dvc.yaml's stages (templates kept) with only their
    param-file deps, beside the real params.yaml (the lists the templates expand)."""
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("dvc")
    (root / PARAMS_FILE).write_text((REPO / PARAMS_FILE).read_text())
    stages: dict[str, Any] = {}
    cached = {st.name for st in S.STAGES if cached_by_both(st)}
    for name, st in committed()["stages"].items():
        body = st.get("do") or st
        if name not in cached:  # always rerun by both runners, or not a task of the flows
            continue
        kept = {"cmd": body["cmd"], "deps": [d for d in body["deps"] if d.startswith(PARAM_FILES)]}
        if "do" in st:
            stages[name] = {"foreach": st["foreach"], "do": kept}
        else:
            stages[name] = {**({"matrix": st["matrix"]} if "matrix" in st else {}), **kept}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    Repo.init(root, no_scm=True)
    with Repo(root) as repo:
        yield repo


def test_the_calls_are_the_ones_dvc_expands(dvc_repo: Any) -> None:
    assert {st.name for st in dvc_repo.index.stages} == {c.name for c in calls()}


def dvc_reruns(before: Config, after: Config, repo: Any) -> set[str]:
    """The calls ``dvc status`` reports changed when the params files go from before to after."""
    out = Path(repo.root_dir) / "outputs" / "params"
    write_sections(before, out)
    repo.commit(force=True)  # dvc.lock: the params files' hashes as `before` writes them
    assert repo.status() == {}
    write_sections(after, out)
    return {address.rpartition(":")[2] for address in repo.status()}  # "<dvc.yaml>:name"


def prefect_reruns(before: Config, after: Config) -> set[str]:
    """The calls whose Prefect cache key changes from ``before`` to ``after``."""
    tasks = flow_tasks()
    rerun = set()
    for call in calls():
        task = tasks[call.stage.task]
        ctx = SimpleNamespace(task=task, result_store=None)
        keys = {
            task.cache_policy.compute_key(ctx, {"cfg": cfg, **call.params}, {})
            for cfg in (before, after)
        }
        if len(keys) == 2:
            rerun.add(call.name)
    return rerun


STAGE_NAMES = {s.name for s in S.STAGES}
CLASSICAL = {"classical-ptb", "classical-mitbih"} | ({"multilead-classical"} & STAGE_NAMES)
DEEP = {"deep-ptb", "deep-mitbih", "multilead"}
TRANSFER = {"pretrain", "finetune", "finetune-scratch"}


def expected_calls(stages: set[str], models: set[str] | None) -> set[str]:
    """The calls of ``stages`` (those of ``models`` only, where given)."""
    return {
        c.name
        for c in calls()
        if c.stage.name in stages and (models is None or c.params["model"] in models)
    }


@pytest.mark.parametrize(
    ("override", "stages", "models"),
    [
        ({"deep": {"imbalance": "balanced_sampler"}}, DEEP | TRANSFER, None),
        ({"transfer": {"lr": 0.002}}, TRANSFER, None),
        ({"classical": {"imbalance": "none"}}, CLASSICAL, None),
        ({"classical": {"lgbm": {"n_estimators": 21}}}, CLASSICAL, {"lgbm"}),
        ({"deep": {"archs": {"transformer": {"layers": 3}}}}, DEEP, {"transformer"}),
        ({"deep": {"archs": {"cnn": {"dropout": 0.3}}}}, DEEP, {"cnn", "cnn+rr"}),
        ({"deep": {"archs": {"rescnn": {"blocks": 3}}}}, DEEP, {"rescnn", "rescnn+rr"}),
        ({}, set(), None),
    ],
    ids=[
        "deep.imbalance",
        "transfer.lr",
        "classical.imbalance",
        "classical.lgbm.n_estimators",
        "deep.archs.transformer",
        "deep.archs.cnn",
        "deep.archs.rescnn (not the transfer encoder's)",
        "no change",
    ],
)
def test_a_params_change_reruns_the_same_calls_in_both_runners(
    cfg_smoke_factory,
    dvc_repo: Any,
    override: dict[str, Any],
    stages: set[str],
    models: set[str] | None,
) -> None:
    expected = expected_calls(stages, models)
    assert bool(expected) == bool(stages)
    before, after = cfg_smoke_factory(), cfg_smoke_factory(**override)
    assert dvc_reruns(before, after, dvc_repo) == expected
    assert prefect_reruns(before, after) == expected


def test_one_models_knob_reruns_that_models_calls_only() -> None:
    lgbm = expected_calls(CLASSICAL, {"lgbm"})
    schemes = ("beat", "patient")
    ptb = {f"classical-ptb@{s}-lgbm-{i}" for s in schemes for i in ("raw", "features")}
    mitbih = {
        f"classical-mitbih@{s}-lgbm-{i}"
        for s in schemes
        for i in ("raw", "features", "raw+rr", "features+rr")
    }
    assert ptb | mitbih <= lgbm
    assert not [c for c in lgbm if "-rf-" in c or "-lr-" in c]
    assert expected_calls(DEEP, {"transformer"}) == {f"deep-ptb@{s}-transformer" for s in schemes}


def test_both_ptb_schemes_fine_tune_the_one_pretrained_encoder(cfg_smoke) -> None:
    from ecgops.training.pretrain import SCHEME

    assert S.PRETRAIN_SCHEME == SCHEME
    pretrains = [c for c in calls() if c.stage.name == "pretrain"]
    assert sorted(c.params["method"] for c in pretrains) == ["contrastive", "supervised"]
    assert {c.params["scheme"] for c in pretrains} == {SCHEME}
    encoder = cfg_smoke.path("models") / "encoders" / f"contrastive-{SCHEME}.pt"
    for scheme in ("beat", "patient"):
        params = {"encoder": "contrastive", "scheme": scheme}
        assert encoder in S.stage("finetune").files_read(cfg_smoke, params), scheme
