"""``dvc.yaml``, generated from the stage table (:mod:`ecgops.stages`).

``ecgops stages dvc-yaml`` writes it and ``--check`` (and a test) fails when the committed file
differs. The stages DVC always reruns (``always_changed``: their inputs lie outside DVC's view)
live in a second, small file, :data:`SOURCES_FILE`: DVC rewrites a stage's lockfile each time
the stage runs, round-tripping the whole file through ruamel (2-6 s for the main ``dvc.lock``,
twice on every no-op ``dvc repro``). ``dvc repro`` still runs both files as one graph (the main
file's stages depend on their outputs). A stage's code is one dep, its code file
(:mod:`ecgops.code_files`), which keeps the main ``dvc.lock`` small.
Matrices stay DVC ``foreach``/``matrix`` templates over params.yaml (``pipeline:``,
``splits.schemes``...), so ``dvc exp run -S`` still changes what runs. A stage with per-model
params (:class:`~ecgops.stages.ModelParams`) depends on its model's own params file through the
matrix template (``outputs/params/classical/${item.model}.json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecgops import paths as P
from ecgops.code_files import coded_stages
from ecgops.param_files import model_files, model_names, split_params
from ecgops.stages import STAGES, UNCACHED, Output, RelativePaths, Stage, dvc_sections

MAIN_FILE = Path("dvc.yaml")
"""The pipeline's stages (every stage DVC can skip), relative to the project root."""
SOURCES_FILE = Path("pipelines/sources/dvc.yaml")
"""The stages DVC always reruns, in their own small lockfile (run in the project root)."""
DVC_FILES = (MAIN_FILE, SOURCES_FILE)

DVC_HEADER = """\
# GENERATED from ecgops/stages.py by `ecgops stages dvc-yaml`: edit the table, not this file
# (a test fails when they differ). Every stage is one `ecgops` command; parameters reach the
# stages as resolved per-section JSON files (profile applied), so a change to one section reruns
# only the stages that read it. Model lists come from params.yaml (`pipeline:`); a stage's code
# dep, outputs/code/<stage>.json, holds the md5 of each file of its modules' import closure.
"""
SOURCES_NOTE = """\
# The stages DVC always reruns (their inputs lie outside DVC's view: the profile, the raw
# source). They sit in this file so that their reruns rewrite this small dvc.lock, not the
# project's large one; `dvc repro` in the project root runs them with the rest.
"""


def dvc_stage(st: Stage, rel: RelativePaths, yaml_params: Mapping[str, Any]) -> dict[str, Any]:
    """One stage as ``dvc.yaml`` holds it (``foreach``/``matrix`` templates kept).

    Args:
        st: the stage.
        rel: the relative view of params.yaml's ``paths``.
        yaml_params: params.yaml (the models that get a params file).

    Returns:
        The stage's mapping: ``foreach`` + ``do``, or ``matrix`` and the body, or the body.
    """
    if len(st.matrix) == 1:
        templates = {st.matrix[0][0]: "${item}"}
    else:
        templates = {name: f"${{item.{name}}}" for name, _ in st.matrix}
    params = {**st.fixed, **templates}
    body: dict[str, Any] = {}
    if dvc_file(st) != MAIN_FILE:  # paths stay relative to the project root
        body["wdir"] = "/".join([".."] * len(dvc_file(st).parent.parts))
    body["cmd"] = st.cmd.format(**params, params_dir=P.params_dir(rel).as_posix())
    if st.always_changed:
        body["always_changed"] = True
    reads = [p.as_posix() for p in (st.reads(rel, params) if st.reads else [])]
    sections = [s for s in dvc_sections() if s in st.sections]
    files = [*sections, *model_files(st.model_params, params, yaml_params)]
    body["deps"] = [
        *st.extra_deps,
        *reads,
        *([P.code_file(rel, st.name).as_posix()] if st.entry else []),
        *(P.params_file(rel, f).as_posix() for f in files),
    ]
    outs = st.outs
    if st.name == "params":
        params_outs = [lambda c, _, f=f: P.params_file(c, f) for f in _params_outs(yaml_params)]
        code_outs = [lambda c, _, n=coded.name: P.code_file(c, n) for coded in coded_stages()]
        outs = tuple(Output(path, UNCACHED) for path in (*params_outs, *code_outs))
    for kind, items in (("outs", outs), ("metrics", st.metrics), ("plots", st.plots)):
        if items:
            body[kind] = [_dvc_out(o, rel, params) for o in items]
    if len(st.matrix) == 1:
        return {"foreach": f"${{{st.matrix[0][1]}}}", "do": body}
    if st.matrix:
        return {"matrix": {name: f"${{{src}}}" for name, src in st.matrix}, **body}
    return body


def dvc_file(st: Stage) -> Path:
    """The generated file that holds the stage: :data:`SOURCES_FILE` if DVC always reruns it."""
    return SOURCES_FILE if st.always_changed else MAIN_FILE


def _params_outs(params: Mapping[str, Any]) -> list[str]:
    """The params files DVC stages depend on: their sections, then every model file."""
    splits = split_params([st for st in STAGES if st.dvc])
    models = [sp.file_name(n) for sp in splits for n in model_names(sp, params)]
    return [*dvc_sections(), *models]


def _dvc_out(out: Output, rel: RelativePaths, params: Mapping[str, Any]) -> Any:
    path = out.path(rel, params).as_posix()
    return {path: dict(out.options)} if out.options else path


def dvc_document(root: Path, file: Path = MAIN_FILE) -> dict[str, Any]:
    """One generated ``dvc.yaml`` as data: ``{"stages": {name: stage}}``.

    Args:
        root: the project root (its params.yaml names the paths).
        file: which of :data:`DVC_FILES`.
    """
    from ecgops.config import PARAMS_FILE, load_params

    params = load_params(root / PARAMS_FILE)
    rel = RelativePaths(params["paths"])
    stages = [st for st in STAGES if st.dvc and dvc_file(st) == file]
    return {"stages": {st.name: dvc_stage(st, rel, params) for st in stages}}


def dvc_yaml(root: Path, file: Path = MAIN_FILE) -> str:
    """The text of one generated ``dvc.yaml`` (header comment, one block per stage)."""
    header = DVC_HEADER + (SOURCES_NOTE if file != MAIN_FILE else "")
    lines = [header.rstrip("\n"), "stages:"]
    for name, body in dvc_document(root, file)["stages"].items():
        lines += _yaml_lines({name: body}, 1) + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _yaml_lines(data: Mapping[str, Any], level: int) -> list[str]:
    """Block-style YAML of the dvc.yaml mapping; option mappings in flow style."""
    pad = "  " * level
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines += [f"{pad}{key}:", *_yaml_lines(value, level + 1)]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}:")
            lines += [f"{pad}  - {_yaml_item(item)}" for item in value]
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def _yaml_item(item: Any) -> str:
    if isinstance(item, Mapping):
        ((path, options),) = item.items()
        flow = ", ".join(f"{k}: {_scalar(v)}" for k, v in options.items())
        return f"{_scalar(path)}: {{{flow}}}"
    return _scalar(item)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if ": " in text or " #" in text or text[:1] in "{[&*!|>'\"%@`,?":
        return json.dumps(text)
    return text
