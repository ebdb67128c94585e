"""The pipeline's stages, each declared once: command, matrix, params, code, reads and writes.

Both runners read this table. ``dvc.yaml`` is generated from it (:mod:`ecgops.dvc_yaml`,
``ecgops stages dvc-yaml``; a test fails when the committed file differs), and the Prefect
tasks of ``flows/`` derive their cache policies from the same entries
(``InputsAndFiles.for_stage``, :mod:`ecgops.orchestration.caching`), so they cannot drift:

- **params**: the ``params.yaml`` sections a stage reads. DVC depends on their resolved JSON
  (``outputs/params/{section}.json``, profile applied); the Prefect cache key on their values.
  A model's own subsection (``classical.lgbm``, ``deep.archs.cnn``:
  :mod:`ecgops.model_params`) is split off into its own file, and a stage declaring it depends
  on its call's model's file only (:mod:`ecgops.param_files`), so one model's knob reruns that
  model's stages only;
- **code**: the import closure of the stage's entry modules (:mod:`ecgops.codegraph`), every
  ecgops module the command can run, lazy imports included, as paths (a whole folder where
  all of it is imported). An edit to any of them reruns the stage in both runners (DVC
  through the stage's code file, ``outputs/code/{stage}.json``: :mod:`ecgops.code_files`);
- **reads / writes**: path functions of :mod:`ecgops.paths`, called with the real config by
  Prefect and with a relative view of ``params.yaml``'s ``paths`` (and DVC's ``${item}``
  templates as the parameters) for ``dvc.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from ecgops import paths as P
from ecgops.model_params import CLASSICAL_MODEL_PARAMS, NET_PARAMS, ModelParams
from ecgops.paths import HasPaths

PathsFn = Callable[[HasPaths, Mapping[str, Any]], list[Path]]
PRETRAIN_TASK = "mitbih"
"""Encoders are pretrained on MIT-BIH ..."""
FINETUNE_TASK = "ptb"
"""... and fine-tuned on PTB."""
PRETRAIN_SCHEME = "patient"
"""... on one MIT-BIH split for both PTB schemes: ``ecgops.training.pretrain.SCHEME``, named
here so the stage table imports no training code (a test checks that the two agree)."""
SCRATCH = "scratch"
"""The encoder name of the from-scratch transfer baseline."""
PLOTS = (
    ("roc.csv", {"x": "fpr", "y": "tpr", "cache": False}),
    ("pr.csv", {"x": "recall", "y": "precision", "cache": False}),
    ("confusion.csv", {"template": "confusion", "x": "actual", "y": "predicted", "cache": False}),
)
"""The DVC plots of every evaluated run (files in its plots folder)."""
UNCACHED = {"cache": False}


@dataclass(frozen=True)
class Output:
    """A file or folder a stage writes, with its ``dvc.yaml`` options."""

    path: Callable[[HasPaths, Mapping[str, Any]], Path]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage (a DVC stage; a Prefect task where ``task`` is set).

    Attributes:
        name: the DVC stage name.
        cmd: the command, with ``{param}`` placeholders for the matrix and fixed parameters.
        task: the Prefect task that runs it (None: DVC only); several stages may share one
            task (e.g. ``classical-ptb`` and ``classical-mitbih`` run ``train-classical``).
        entry: ecgops modules the command runs; its code deps are their import closure.
        sections: params.yaml sections it reads.
        model_params: subsections of them keyed by the call's model (:class:`ModelParams`):
            the stage depends on its model's entry only. A stage reading a section with a
            split subsection without declaring it does not see the subsection at all.
        matrix: ``(parameter, params.yaml list)`` pairs; one pair is a DVC ``foreach``.
        fixed: parameters with one value (``task`` of ``classical-ptb``).
        reads: files it reads inside the project.
        prefect_reads: what the Prefect task hashes instead of ``reads``: files outside the
            project (raw source, Kaggle CSVs) that DVC covers with ``always_changed``, or a
            narrower subset of ``reads``.
        prefect_writes: what the Prefect task checks instead of ``outs`` and ``metrics``.
        outs, metrics, plots: what it writes.
        extra_deps: further DVC deps (``params.yaml`` for the ``params`` stage).
        always_changed: DVC always reruns it (its inputs live outside DVC).
        dvc: whether the stage is in ``dvc.yaml`` (``import-kaggle`` is Prefect only).
    """

    name: str
    cmd: str
    task: str | None
    entry: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    model_params: tuple[ModelParams, ...] = ()
    matrix: tuple[tuple[str, str], ...] = ()
    fixed: Mapping[str, str] = field(default_factory=dict)
    reads: PathsFn | None = None
    prefect_reads: PathsFn | None = None
    prefect_writes: PathsFn | None = None
    outs: tuple[Output, ...] = ()
    metrics: tuple[Output, ...] = ()
    plots: tuple[Output, ...] = ()
    extra_deps: tuple[str, ...] = ()
    always_changed: bool = False
    dvc: bool = True

    def code(self) -> tuple[str, ...]:
        """The source paths the stage runs (relative to the project root)."""
        return _code(self.entry)

    def files_read(self, cfg: HasPaths, params: Mapping[str, Any]) -> list[Path]:
        """The files whose content the Prefect cache key of one call hashes."""
        fn = self.prefect_reads or self.reads
        return list(fn(cfg, params)) if fn else []

    def files_written(self, cfg: HasPaths, params: Mapping[str, Any]) -> list[Path]:
        """The outputs of one call (a missing one makes Prefect forget its cached result)."""
        if self.prefect_writes:
            return list(self.prefect_writes(cfg, params))
        return [o.path(cfg, params) for o in (*self.outs, *self.metrics)]


@lru_cache(maxsize=64)
def _code(entry: tuple[str, ...]) -> tuple[str, ...]:
    from ecgops.codegraph import closure, code_paths

    return code_paths(closure(entry)) if entry else ()


def _may_be(params: Mapping[str, Any], name: str, value: str) -> bool:
    """Whether a parameter is ``value``, or a DVC template that covers it (``${item.x}``)."""
    given = str(params.get(name, ""))
    return given == value or given.startswith("${")


def _tables(*kinds: Callable[[HasPaths, str], Path], task: str | None = None) -> PathsFn:
    """Reads: tables of the call's task (or of a fixed one)."""
    return lambda cfg, p: [kind(cfg, task or p["task"]) for kind in kinds]


def _classical_reads(cfg: HasPaths, p: Mapping[str, Any]) -> list[Path]:
    files = [P.beat_table(cfg, p["task"]), P.split_table(cfg, p["task"])]
    return files + ([P.feature_table(cfg, p["task"])] if _may_be(p, "input", "features") else [])


def _finetune_reads(cfg: HasPaths, p: Mapping[str, Any]) -> list[Path]:
    files = [P.beat_table(cfg, FINETUNE_TASK), P.split_table(cfg, FINETUNE_TASK)]
    if p["encoder"] != SCRATCH:  # a new encoder means new fine-tunes
        files.append(P.encoder_file(cfg, p["encoder"], PRETRAIN_SCHEME))  # one for both schemes
    return files


def _finetune_name(p: Mapping[str, Any]) -> str:
    if p["encoder"] == SCRATCH:
        return f"transfer-{SCRATCH}"
    return f"transfer-{p['encoder']}-{p['strategy']}"


def _build_sources(cfg: Any, p: Mapping[str, Any]) -> list[Path]:
    from ecgops.data.build import source_folder, task_sources

    return [source_folder(cfg, s) for s in task_sources(cfg, p["task"])]


def _evaluated(task: str | None, name: Callable[[Mapping[str, Any]], str]) -> dict[str, Any]:
    """The metrics file and the plots of an evaluated run."""

    def task_of(p: Mapping[str, Any]) -> str:
        return task or p["task"]

    return {
        "metrics": (
            Output(lambda c, p: P.metrics_file(c, task_of(p), p["scheme"], name(p)), UNCACHED),
        ),
        "plots": tuple(
            Output(lambda c, p, f=file: P.plots_dir(c, task_of(p), p["scheme"], name(p)) / f, opts)
            for file, opts in PLOTS
        ),
    }


def _classical(task: str) -> Stage:
    return Stage(
        name=f"classical-{task}",
        cmd="ecgops train classical --task {task} --scheme {scheme} --model {model}"
        " --input {input}",
        task="train-classical",
        entry=("ecgops.training.classical",),
        sections=("calibration", "classical", "context", "data", "features", "splits", "tracking"),
        model_params=(CLASSICAL_MODEL_PARAMS,),
        matrix=(
            ("scheme", "splits.schemes"),
            ("model", f"pipeline.classical.{task}"),
            ("input", f"pipeline.classical_inputs.{task}"),
        ),
        fixed={"task": task},
        reads=_classical_reads,
        **_evaluated(None, lambda p: f"{p['model']}-{p['input']}"),
    )


def _deep(task: str) -> Stage:
    return Stage(
        name=f"deep-{task}",
        cmd="ecgops train deep --task {task} --scheme {scheme} --model {model}",
        task="train-deep",
        entry=("ecgops.training.deep",),
        sections=("calibration", "context", "data", "deep", "splits", "tracking"),
        model_params=(NET_PARAMS,),
        matrix=(("scheme", "splits.schemes"), ("model", f"pipeline.deep.{task}")),
        fixed={"task": task},
        reads=_tables(P.beat_table, P.split_table),
        **_evaluated(None, lambda p: p["model"]),
    )


MULTILEAD_TASK = "ptb12"
"""The multi-lead PTB table (ecgops.data.multilead), split on the ``ptb`` split's patients."""
MULTILEAD_BASE = "ptb"


def _multilead_stages() -> list[Stage]:
    """Build (validated inline), split and train the multi-lead PTB table."""
    ml, base = MULTILEAD_TASK, MULTILEAD_BASE
    return [
        Stage(
            name=f"build-{ml}",
            cmd=f"ecgops data build --task {ml}",
            task=f"build-{ml}",
            entry=("ecgops.data.multilead",),
            sections=("data", "multilead", "rpeaks"),
            reads=lambda c, _: [P.raw_dir(c)],
            prefect_reads=lambda c, _: _build_sources(c, {"task": base}),
            outs=(
                Output(lambda c, _: P.beat_table(c, ml)),
                Output(lambda c, _: P.validation_dir(c, ml), UNCACHED),
            ),
            metrics=(Output(lambda c, _: P.beat_summary(c, ml), UNCACHED),),
        ),
        Stage(
            name=f"split-{ml}",
            cmd=f"ecgops data split --task {ml}",
            task=f"split-{ml}",
            entry=("ecgops.data.multilead_splits",),
            sections=("data", "splits"),
            reads=lambda c, _: [P.beat_table(c, ml), P.beat_table(c, base), P.split_table(c, base)],
            outs=(Output(lambda c, _: P.split_table(c, ml)),),
        ),
        Stage(
            name="multilead",
            cmd=f"ecgops train deep --task {ml} --scheme {{scheme}} --model {{model}}"
            " --leads {leads}",
            task="train-multilead",
            entry=("ecgops.training.multilead",),
            sections=("calibration", "data", "deep", "multilead", "splits", "tracking"),
            model_params=(NET_PARAMS,),
            matrix=(
                ("scheme", "splits.schemes"),
                ("model", "pipeline.multilead.nets"),
                ("leads", "pipeline.multilead.lead_sets"),
            ),
            reads=lambda c, _: (
                [P.beat_table(c, t) for t in (ml, base)] + [P.split_table(c, t) for t in (ml, base)]
            ),
            **_evaluated(ml, lambda p: f"{p['model']}-{p['leads']}"),
        ),
        Stage(
            name="multilead-classical",
            cmd=f"ecgops train classical --task {ml} --scheme {{scheme}} --model {{model}}"
            " --leads {leads}",
            task="train-multilead-classical",
            entry=("ecgops.training.multilead_classical",),
            sections=(
                "calibration",
                "classical",
                "data",
                "features",
                "multilead",
                "splits",
                "tracking",
            ),
            model_params=(CLASSICAL_MODEL_PARAMS,),
            matrix=(
                ("scheme", "splits.schemes"),
                ("model", "pipeline.multilead.classical"),
                ("leads", "pipeline.multilead.lead_sets"),
            ),
            reads=lambda c, _: (
                [P.beat_table(c, t) for t in (ml, base)] + [P.split_table(c, t) for t in (ml, base)]
            ),
            **_evaluated(ml, lambda p: f"{p['model']}-features-{p['leads']}"),
        ),
    ]


TRANSFER_SECTIONS = ("calibration", "deep", "splits", "tracking", "transfer")
"""Pretraining and fine-tuning read ``transfer`` and the deep knobs (imbalance, threads); not
``deep.archs`` (their encoder is ``transfer.encoder``), so they declare no :data:`NET_PARAMS`."""


def _data_stages() -> list[Stage]:
    tasks = (("task", "pipeline.tasks"),)
    return [
        Stage(
            name="raw",
            cmd="ecgops data import-raw",
            task="import-raw",
            entry=("ecgops.data.raw",),
            sections=("data", "paths"),
            prefect_reads=lambda cfg, _: [cfg.raw_source],
            # persist: DVC leaves the copy in place, so unchanged files are not copied (nor
            # rehashed) again; the import deletes what the source no longer has
            outs=(Output(lambda c, _: P.raw_dir(c), {"persist": True}),),
            always_changed=True,  # the source lives outside the repo
        ),
        Stage(
            name="import-kaggle",
            cmd="ecgops data import-kaggle {directory}",
            task="import-kaggle",
            entry=("ecgops.data.kaggle",),
            sections=("data", "validation"),
            prefect_reads=lambda _, p: sorted(Path(p["directory"]).glob("*.csv")),
            prefect_writes=lambda c, _: [P.beat_table(c, t) for t in c.pipeline.tasks],
            dvc=False,
        ),
        Stage(
            name="build",
            cmd="ecgops data build --task {task}",
            task="build",
            entry=("ecgops.data.build",),
            sections=("data", "validation"),
            matrix=tasks,
            reads=lambda c, _: [P.raw_dir(c)],
            prefect_reads=_build_sources,  # the task's own source folders only
            outs=(Output(lambda c, p: P.beat_table(c, p["task"])),),
            metrics=(Output(lambda c, p: P.beat_summary(c, p["task"]), UNCACHED),),
        ),
        Stage(
            name="validate",
            cmd="ecgops validate --task {task}",
            task="validate",
            entry=("ecgops.data.validation",),
            sections=("validation",),
            matrix=tasks,
            reads=_tables(P.beat_table),
            outs=(Output(lambda c, p: P.validation_dir(c, p["task"]), UNCACHED),),
        ),
        Stage(
            name="split",
            cmd="ecgops data split --task {task}",
            task="split",
            entry=("ecgops.data.splits",),
            sections=("data", "splits"),
            matrix=tasks,
            reads=_tables(P.beat_table),
            outs=(
                Output(lambda c, p: P.split_table(c, p["task"])),
                Output(lambda c, p: P.gate_file(c, p["task"]), UNCACHED),  # the sealed gate set
            ),
        ),
        Stage(
            name="features",
            cmd="ecgops features build --task {task}",
            task="features",
            entry=("ecgops.features.tsfeatures",),
            sections=("data", "features"),
            matrix=tasks,
            reads=_tables(P.beat_table),
            outs=(Output(lambda c, p: P.feature_table(c, p["task"])),),
        ),
    ]


def _transfer_stages() -> list[Stage]:
    finetune = {
        "task": "finetune",
        "entry": ("ecgops.training.finetune",),
        "sections": TRANSFER_SECTIONS,
        "reads": _finetune_reads,
        "metrics": _evaluated(FINETUNE_TASK, _finetune_name)["metrics"],
    }
    return [
        Stage(
            name="pretrain",
            cmd="ecgops train pretrain --method {method} --scheme {scheme}",
            task="pretrain",
            entry=("ecgops.training.pretrain",),
            sections=TRANSFER_SECTIONS,
            matrix=(("method", "pipeline.pretrain_methods"),),
            fixed={"scheme": PRETRAIN_SCHEME},  # one encoder per method for both PTB schemes
            reads=_tables(P.beat_table, P.split_table, task=PRETRAIN_TASK),
            outs=(Output(lambda c, p: P.encoder_file(c, p["method"], p["scheme"])),),
            metrics=_evaluated(PRETRAIN_TASK, lambda p: f"probe-{p['method']}")["metrics"],
        ),
        Stage(
            name="finetune",
            cmd="ecgops train finetune --encoder {encoder} --strategy {strategy} --scheme {scheme}",
            matrix=(
                ("encoder", "pipeline.finetune_encoders"),
                ("strategy", "transfer.strategies"),
                ("scheme", "splits.schemes"),
            ),
            **finetune,
        ),
        Stage(
            name="finetune-scratch",
            cmd="ecgops train finetune --encoder {encoder} --scheme {scheme}",
            matrix=(("scheme", "splits.schemes"),),
            fixed={"encoder": SCRATCH},
            **finetune,
        ),
    ]


def _build_table() -> tuple[Stage, ...]:
    return (
        Stage(
            name="params",
            cmd="ecgops config --sections-dir {params_dir} --code",
            task=None,  # the flows' `params` task always runs
            extra_deps=("params.yaml",),
            always_changed=True,
        ),
        *_data_stages(),
        *(_classical(t) for t in ("ptb", "mitbih")),
        *(_deep(t) for t in ("ptb", "mitbih")),
        *_multilead_stages(),
        *_transfer_stages(),
        Stage(
            name="register",
            cmd="ecgops register && ecgops promote",
            task="register",  # per task in the flows: reads that task's metrics only
            entry=("ecgops.registry.register", "ecgops.registry.promote"),
            sections=("registry", "tracking"),
            reads=lambda c, p: [P.metrics_dir(c, p.get("task"))],
            outs=(Output(lambda c, _: P.registry_dir(c), UNCACHED),),
            prefect_writes=lambda c, _: [],  # the flows' register task writes no file
            # Not always rerun: every training that logs a new MLflow run rewrites its metrics
            # file (run id included), so unchanged metrics mean nothing new to register; a
            # registry edited by hand (`ecgops promote`) needs no rerun (`dvc repro -f register`).
        ),
        Stage(
            name="report",
            cmd="ecgops report",
            task=None,  # the flows' `report` task always runs
            entry=("ecgops.evaluation.report",),
            sections=("report",),
            reads=lambda c, _: [P.metrics_dir(c), P.registry_dir(c)],
            outs=tuple(
                Output(lambda c, _, n=n: P.report_dir(c) / n, UNCACHED)
                for n in ("results.md", "results.html", "figures")
            ),  # reruns when a metrics file or the registry's decisions change
        ),
    )


STAGES: tuple[Stage, ...] = _build_table()
"""Every stage, in pipeline order."""


def stage(name: str) -> Stage:
    """A stage by its DVC name or the Prefect task that runs it (the first such stage).

    Args:
        name: e.g. ``deep-ptb`` or ``train-deep``.

    Returns:
        The stage.

    Raises:
        KeyError: no stage has that name.
    """
    for s in STAGES:
        if name in (s.name, s.task):
            return s
    raise KeyError(f"no stage or task {name!r} in ecgops.stages.STAGES")


def for_task(task: str) -> list[Stage]:
    """Every stage that a Prefect task runs (``train-classical``: both classical stages)."""
    return [s for s in STAGES if s.task == task]


@dataclass(frozen=True)
class RelativePaths:
    """The ``paths`` of params.yaml as relative paths: how ``dvc.yaml`` names files."""

    paths: Mapping[str, str]
    root: Path = field(default_factory=lambda: Path(PurePosixPath()))

    def path(self, name: str) -> Path:
        """A ``paths`` entry, relative to the project root."""
        return Path(self.paths[name])


def dvc_sections(stages: Sequence[Stage] = STAGES) -> list[str]:
    """Every params section some DVC stage depends on, in params.yaml order."""
    from ecgops.config import Config

    used = {s for st in stages if st.dvc for s in st.sections}
    return [name for name in Config.model_fields if name in used]
