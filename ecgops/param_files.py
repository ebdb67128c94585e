"""The resolved params files: one JSON per section, and one per model of a split subsection.

These files are the DVC stages' parameter deps (``outputs/params/``, written by the ``params``
stage, ``ecgops config --sections-dir``, and by the Prefect ``ingest`` flow), and the Prefect
cache keys hash the same payloads (:func:`call_params`), so a change reruns the same calls in
both runners:

- ``{section}.json``: the section's resolved values (profile applied), without the entries
  that a :class:`~ecgops.stages.ModelParams` of the stage table splits off;
- ``{path}/{model}.json`` (``classical/lgbm.json``, ``deep/archs/cnn+rr.json``): one model's
  entry, so a change of ``classical.lgbm`` reruns the lgbm stages only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgops.config import Config
from ecgops.model_params import ModelParams
from ecgops.models import deep_config_names, split_context
from ecgops.stages import STAGES, Stage


def split_params(stages: Sequence[Stage] = STAGES) -> tuple[ModelParams, ...]:
    """Every subsection some stage splits off, once each, in table order."""
    return tuple(dict.fromkeys(m for st in stages for m in st.model_params))


def _node(params: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    node: Any = params
    for key in path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise KeyError(f"params.yaml: no mapping at {path!r} (a ModelParams of ecgops/stages.py)")
    return node


def _keys(split: ModelParams, node: Mapping[str, Any]) -> list[str]:
    return [k for k in (split.keys or tuple(node)) if k in node]


def model_names(split: ModelParams, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The model names that get a file: each entry, and ``{net}+rr`` for the context nets.

    Args:
        split: the subsection.
        params: the resolved config as data (``Config.model_dump(mode="json")``) or params.yaml.

    Returns:
        e.g. ``("lstm", ..., "cnn", "rescnn", "transformer", "cnn+rr", "rescnn+rr")``.
    """
    return deep_config_names(_keys(split, _node(params, split.path)))


def _common(params: Mapping[str, Any], section: str, splits: Sequence[ModelParams]) -> Any:
    """A section's values without the entries split off into model files."""
    own = [s for s in splits if s.section == section]
    if not own:
        return params[section]
    values = copy.deepcopy(params[section])
    for split in own:
        parts = split.path.split(".")[1:]
        if not split.keys and parts:  # every key: the whole node leaves
            parent = _node({section: values}, ".".join([section, *parts[:-1]]))
            del parent[parts[-1]]  # type: ignore[attr-defined]
            continue
        node = _node({section: values}, split.path)
        for key in _keys(split, node):
            del node[key]  # type: ignore[attr-defined]
    return values


def payloads(
    params: Mapping[str, Any], splits: Sequence[ModelParams] | None = None
) -> dict[str, dict[str, Any]]:
    """Every params file's content, by file name (:func:`ecgops.paths.params_file`).

    Args:
        params: the resolved config as data (``Config.model_dump(mode="json")``).
        splits: the subsections split off (default: those of :data:`ecgops.stages.STAGES`).

    Returns:
        ``{"classical": {...}, ..., "classical/lgbm": {...}, "deep/archs/cnn+rr": {...}}``;
        each payload holds ``profile``, ``seed`` and the values (a model file's under its
        dotted key, e.g. ``deep.archs.cnn``).
    """
    splits = split_params() if splits is None else tuple(splits)
    head = {"profile": params.get("profile"), "seed": params.get("seed")}
    out = {
        section: {**head, section: _common(params, section, splits)}
        for section, values in params.items()
        if isinstance(values, dict)
    }
    for split in splits:
        node = _node(params, split.path)
        for name in model_names(split, params):
            base = split_context(name)[0]
            out[split.file_name(name)] = {**head, f"{split.path}.{base}": node[base]}
    return out


def model_files(
    model_params: Sequence[ModelParams], call: Mapping[str, Any], params: Mapping[str, Any]
) -> list[str]:
    """The model files one call depends on: its model's file of each split subsection.

    Args:
        model_params: the stage's :attr:`~ecgops.stages.Stage.model_params`.
        call: the call's parameters (``model`` ...) or ``dvc.yaml``'s templates.
        params: the config as data; a call without the parameter depends on every model file.

    Returns:
        File names such as ``classical/lgbm`` or ``deep/archs/${item.model}``.
    """
    files = []
    for split in model_params:
        if split.param in call:
            files.append(split.file_name(str(call[split.param])))
        else:
            files += [split.file_name(n) for n in model_names(split, params)]
    return files


def call_params(
    cfg: Config,
    sections: Sequence[str],
    model_params: Sequence[ModelParams] = (),
    call: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The params one call depends on, exactly as its DVC stage's param files hold them.

    Args:
        cfg: the call's configuration.
        sections: the sections it reads (their common files).
        model_params: its split subsections (its model's files).
        call: its parameters (``{"model": "lgbm", ...}``).

    Returns:
        ``{file name: payload}`` for the call's files (the Prefect cache key's params).
    """
    params = cfg.model_dump(mode="json")
    every = payloads(params)
    names = [*sections, *model_files(model_params, call or {}, params)]
    return {name: every[name] for name in sorted(set(names))}


def write_sections(cfg: Config, out_dir: Path) -> list[Path]:
    """Write every params file (profile applied) into ``out_dir`` (``outputs/params``).

    A change that alters a file's content reruns only the stages that depend on it. The CLI
    (``ecgops config --sections-dir``) and the Prefect ``ingest`` flow both call this, so both
    leave identical files.

    Args:
        cfg: the configuration.
        out_dir: the folder (model files go to subfolders: ``classical/lgbm.json``).

    Returns:
        The written files.
    """
    from ecgops.io import write_json

    every = payloads(cfg.model_dump(mode="json"))
    return [write_json(payload, out_dir / f"{name}.json") for name, payload in every.items()]
