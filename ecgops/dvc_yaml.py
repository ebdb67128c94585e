"""``dvc.yaml``, generated from the stage table (:mod:`ecgops.stages`).

``ecgops stages dvc-yaml`` writes it and ``--check`` (and a test) fails when the committed file
differs. Matrices stay DVC ``foreach``/``matrix`` templates over params.yaml (``pipeline:``,
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
from ecgops.param_files import model_files, model_names, split_params
from ecgops.stages import STAGES, UNCACHED, Output, RelativePaths, Stage, dvc_sections

DVC_HEADER = """\
# GENERATED from ecgops/stages.py by `ecgops stages dvc-yaml`: edit the table, not this file
# (a test fails when they differ). Every stage is one `ecgops` command; parameters reach the
# stages as resolved per-section JSON files (profile applied), so a change to one section reruns
# only the stages that read it. Model lists come from params.yaml (`pipeline:`); the code deps
# are the import closure of each command's modules.
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
    body: dict[str, Any] = {"cmd": st.cmd.format(**params, params_dir=P.params_dir(rel).as_posix())}
    if st.always_changed:
        body["always_changed"] = True
    reads = [p.as_posix() for p in (st.reads(rel, params) if st.reads else [])]
    sections = [s for s in dvc_sections() if s in st.sections]
    files = [*sections, *model_files(st.model_params, params, yaml_params)]
    body["deps"] = [
        *st.extra_deps,
        *reads,
        *st.code(),
        *(P.params_file(rel, f).as_posix() for f in files),
    ]
    outs = st.outs
    if st.name == "params":
        outs = tuple(
            Output(lambda c, _, f=f: P.params_file(c, f), UNCACHED)
            for f in _params_outs(yaml_params)
        )
    for kind, items in (("outs", outs), ("metrics", st.metrics), ("plots", st.plots)):
        if items:
            body[kind] = [_dvc_out(o, rel, params) for o in items]
    if len(st.matrix) == 1:
        return {"foreach": f"${{{st.matrix[0][1]}}}", "do": body}
    if st.matrix:
        return {"matrix": {name: f"${{{src}}}" for name, src in st.matrix}, **body}
    return body


def _params_outs(params: Mapping[str, Any]) -> list[str]:
    """The params files DVC stages depend on: their sections, then every model file."""
    splits = split_params([st for st in STAGES if st.dvc])
    models = [sp.file_name(n) for sp in splits for n in model_names(sp, params)]
    return [*dvc_sections(), *models]


def _dvc_out(out: Output, rel: RelativePaths, params: Mapping[str, Any]) -> Any:
    path = out.path(rel, params).as_posix()
    return {path: dict(out.options)} if out.options else path


def dvc_document(root: Path) -> dict[str, Any]:
    """The whole ``dvc.yaml`` as data: ``{"stages": {name: stage}}``.

    Args:
        root: the project root (its params.yaml names the paths).
    """
    from ecgops.config import PARAMS_FILE, load_params

    params = load_params(root / PARAMS_FILE)
    rel = RelativePaths(params["paths"])
    return {"stages": {st.name: dvc_stage(st, rel, params) for st in STAGES if st.dvc}}


def dvc_yaml(root: Path) -> str:
    """The text of the generated ``dvc.yaml`` (header comment, one block per stage)."""
    lines = [DVC_HEADER.rstrip("\n"), "stages:"]
    for name, body in dvc_document(root)["stages"].items():
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
