"""Typed view of ``params.yaml``: the one source of configuration.

``load_config()`` reads ``params.yaml``, applies the selected profile's overrides
(``smoke``, ``quick`` or ``full``; ``ECGOPS_PROFILE`` wins over the file) and
returns a validated, immutable :class:`Config`. Profiles change sizes, not code.

Why one module over 500 lines: it is the schema of ``params.yaml``, one small pydantic class
per section, in the file's order, beside the loader that fills them. A reader checks a knob
against its type and bounds in one place, every stage imports only ``ecgops.config``, and its
size grows with the number of sections, not with logic (each class holds fields and, at
most, a short validator).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ecgops.models import (
    CLASSICAL_INPUTS,
    CLASSICAL_MODELS,
    CONTEXT_TASKS,
    MULTILEAD_NETS,
    NET_NAMES,
    deep_config_names,
    split_context,
)

TASKS = ("ptb", "mitbih")
Task = Literal["ptb", "mitbih"]
Scheme = Literal["beat", "patient"]
PARAMS_FILE = "params.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Frozen):
    raw_source: str | None
    raw: str
    processed: str
    splits: str
    features: str
    outputs: str
    models: str
    dvc_remote: str


class TrackingConfig(_Frozen):
    uri: str | None
    artifact_root: str | None
    experiment_prefix: str


class MitbihConfig(_Frozen):
    lead: str
    fallback_channel: int
    annotator: str
    beat_symbols: dict[str, list[str]]
    rr_symbols: list[str]
    ds1: list[str]
    ds2: list[str]


class ArrhythmiaSourceConfig(_Frozen):
    """A further beat-annotated WFDB database read like MIT-BIH (``data.arrhythmia_sources``).

    Its folder is ``data.raw_folders[<name>]``; the sampling rate comes from each header.
    """

    leads: list[str] = Field(min_length=1)  # signal names in order of preference (any case)
    fallback_channel: int | None = 0  # none of the leads: this channel (logged); None = error
    annotator: str = "atr"  # reference beat annotations with MIT-BIH beat symbols


class RhythmConfig(_Frozen):
    """RR context of a beat within its record (``data.rhythm``; see ``ecgops.data.rhythm``)."""

    local_beats: int = Field(ge=1)
    long_window_s: float | None = Field(gt=0)
    look_ahead: bool
    valid_rr_s: tuple[float, float]
    valid_ratio: tuple[float, float]


class PtbxlConfig(_Frozen):
    lead: str
    filename_column: str
    holdout_folds: list[int]
    mi_class: str
    norm_class: str


class PtbdbConfig(_Frozen):
    lead: str
    mi_reason: str
    healthy_reason: str


class PeakStatsConfig(_Frozen):
    short_beat_s: float
    hr_reference: Literal["xqrs", "none"]
    match_tolerance_s: float
    hr_bins: list[float]


class DataConfig(_Frozen):
    fs: int
    window_s: float
    beat_len: int
    period_factor: float
    peak_threshold: float
    refractory_s: float
    min_beats_per_window: int
    partial_window: Literal["drop", "keep"]
    last_beat: Literal["pad", "drop"]
    min_beat_s: float
    max_records: int | None
    raw_folders: dict[str, str]
    require_checksums: bool
    stats: PeakStatsConfig
    mitbih: MitbihConfig
    rhythm: RhythmConfig
    ptbxl: PtbxlConfig
    ptbdb: PtbdbConfig
    ptb_sources: list[str]
    arrhythmia_sources: dict[str, ArrhythmiaSourceConfig] = {}
    mitbih_sources: list[str] = ["mitdb"]

    @model_validator(mode="after")
    def _check_arrhythmia_sources(self) -> DataConfig:
        """Every ``mitbih_sources`` name has a raw folder and, but ``mitdb``, its settings."""
        for name in self.mitbih_sources:
            if name not in self.raw_folders:
                raise ValueError(f"data.mitbih_sources: {name!r} has no data.raw_folders entry")
            if name != "mitdb" and name not in self.arrhythmia_sources:
                raise ValueError(f"data.mitbih_sources: {name!r} not in data.arrhythmia_sources")
        if "mitdb" in self.arrhythmia_sources or any("/" in n for n in self.arrhythmia_sources):
            raise ValueError("data.arrhythmia_sources: names may not be mitdb or contain '/'")
        return self


class GateSetConfig(_Frozen):
    """One task's sealed gate set (see ecgops/data/splits.py): named groups, else a fraction."""

    records: list[str] | None = None
    fraction: float = Field(gt=0.0, lt=1.0)


class GateConfig(_Frozen):
    """Sealed gate sets, chosen once with their own seed (not the experiment ``seed``)."""

    seed: int
    ptb: GateSetConfig
    mitbih: GateSetConfig


class SplitsConfig(_Frozen):
    scheme: Scheme
    schemes: list[Scheme]
    test_size: float
    val_size: float
    cv_folds: int
    mitbih_patient_val: Literal["grouped", "beat"]
    extra_sources: Literal["exclude", "train", "test"] = "exclude"
    gate: GateConfig


class ValidationConfig(_Frozen):
    min_rows: dict[str, int]
    min_per_class: dict[str, int]
    max_abs_value: float
    max_inner_zero_run: int
    min_beat_samples: int
    max_duplicate_fraction: float = Field(ge=0.0, le=1.0)


class CompactFeaturesConfig(_Frozen):
    """Parameters of the compact (vectorised) feature set; see ecgops/features/tsfeatures.py."""

    quantiles: list[float]
    autocorr_lags: list[int]
    nonlinearity_lags: list[int]
    peak_support: list[int]
    r_sigma: list[float]
    mass_quantiles: list[float]
    fft_bands: int = Field(ge=1)
    waveform_step: int = Field(ge=1)
    phase_points: int = Field(ge=2)
    s_window_s: float
    st_window_s: tuple[float, float]
    t_start_s: float
    t_end_rr: float = Field(gt=0.0)


class FeaturesConfig(_Frozen):
    set: Literal["compact", "efficient"]
    n_jobs: int
    chunk_size: int = Field(ge=1)
    selection: Literal["relevance", "none"]
    select_fdr: float
    compact: CompactFeaturesConfig


class LRConfig(_Frozen):
    Cs: list[float]
    l1_ratios: list[float]
    cv: int
    max_iter: int
    tol: float = Field(default=1e-4, gt=0.0)


class RFConfig(_Frozen):
    n_estimators: int
    max_depth: int | None
    min_samples_leaf: int


class LGBMConfig(_Frozen):
    n_estimators: int
    learning_rate: float
    num_leaves: int
    subsample: float
    subsample_freq: int
    colsample_bytree: float
    max_bin: int = Field(default=255, ge=2)


class ClassicalConfig(_Frozen):
    imbalance: Literal["smote", "class_weight", "none"]
    smote_k_neighbors: int = Field(ge=1)
    n_jobs: int
    lr: LRConfig
    rf: RFConfig
    lgbm: LGBMConfig
    max_train_rows: int | None
    per_task: dict[str, dict[str, Any]] = {}

    def for_task(self, task: str) -> ClassicalConfig:
        """This section with the task's ``per_task`` overrides applied (validated)."""
        overrides = self.per_task.get(task) or {}
        if not overrides:
            return self
        return ClassicalConfig(**deep_merge(self.model_dump(), overrides))


class AttentionConfig(_Frozen):
    """Transformer attention maps (``deep.attention``; see ecgops/evaluation/attention.py)."""

    examples_per_class: int = Field(ge=1)
    max_beats: int = Field(ge=1)
    rollout_residual: float = Field(ge=0.0, le=1.0)


class DeepConfig(_Frozen):
    batch_size: int
    epochs: int
    patience: int
    lr: float
    weight_decay: float
    imbalance: Literal["weighted_loss", "balanced_sampler", "none"]
    num_threads: int | None
    max_train_rows: int | None
    schedule: Literal["cosine", "plateau"] = "cosine"
    plateau_factor: float = Field(gt=0.0, lt=1.0)
    plateau_patience: int = Field(ge=0)
    grad_clip: float | None = None
    amp: bool = True
    eval_batch_size: int = 256
    cv: bool = True
    attention: AttentionConfig
    archs: dict[str, dict[str, Any]]
    per_task: dict[str, dict[str, Any]] = {}

    def for_task(self, task: str) -> DeepConfig:
        """This section with the task's ``per_task`` overrides applied (validated)."""
        overrides = self.per_task.get(task) or {}
        if not overrides:
            return self
        return DeepConfig(**deep_merge(self.model_dump(), overrides))


class AugmentConfig(_Frozen):
    noise_std: float
    scale_range: tuple[float, float]
    stretch_range: tuple[float, float]


class TransferConfig(_Frozen):
    embedding_dim: int
    projection_dim: int
    encoder: dict[str, Any]
    temperature: float
    pretrain_epochs: int
    finetune_epochs: int
    patience: int
    batch_size: int
    finetune_batch_size: int
    lr: float
    weight_decay: float
    finetune_lr_ratio: float
    phase_one_fraction: float = Field(gt=0.0, lt=1.0)
    strategies: list[Literal["A", "B", "C"]]
    max_train_rows: int | None
    probe_rows: int
    probe_class_weight: Literal["balanced", "none"]
    cv: bool = True
    plot_points: int
    augment: AugmentConfig


class BootstrapConfig(_Frozen):
    """The gate's bootstrap over patients / records (ecgops/registry/gate.py)."""

    n: int = Field(ge=10)
    alpha: float = Field(gt=0.0, lt=1.0)
    seed: int


class RegistryConfig(_Frozen):
    select_metric: str
    select_scheme: Literal["beat", "patient"] | None = None
    margin: float
    floors: dict[str, dict[str, float]]
    max_model_mb: float
    max_latency_ms: float
    latency_repeats: int = Field(default=20, ge=1)
    smoke_beats: int = Field(default=16, ge=1)
    drift_threshold: float
    drift_bins: int = Field(default=10, ge=2)
    record_aggregation: Literal["mean_proba", "majority"]
    lock_timeout_s: float = Field(default=600.0, gt=0)
    bootstrap: BootstrapConfig


class CalibrationConfig(_Frozen):
    """Probability calibration, fitted on validation only (see ecgops/evaluation/calibration.py)."""

    classical: Literal["isotonic", "sigmoid", "none"]
    deep: Literal["temperature", "none"]
    n_bins: int = Field(ge=2)
    temperature_bounds: tuple[float, float]
    min_val_rows: int = Field(ge=0)
    min_class_rows: int = Field(default=1, ge=1)
    eps: float = Field(gt=0.0, lt=0.5)


class ServingConfig(_Frozen):
    host: str
    port: int
    workers: int = Field(default=1, ge=1)
    startup_timeout_s: float = Field(default=180.0, gt=0)
    batch_chunk_size: int = Field(default=10000, ge=1)
    n_jobs: int = Field(default=-1, ge=-1)

    @model_validator(mode="after")
    def _check_threads(self) -> ServingConfig:
        """``n_jobs`` is a thread count or -1 (every core), never 0."""
        if self.n_jobs == 0:
            raise ValueError("serving.n_jobs: a thread count (>= 1), or -1 for every core")
        return self


class AnnotateConfig(_Frozen):
    """``ecgops annotate`` / ``evaluate-annotations`` (ecgops/prediction/annotate.py)."""

    lead_fallbacks: list[str]
    detector: Literal["xqrs", "gqrs"]
    chunk_s: float = Field(gt=0.0)
    detector_overlap_s: float = Field(ge=0.0)
    resample_margin_s: float = Field(ge=0.0)
    extension: str
    match_window_s: float = Field(gt=0.0)


class RpeaksConfig(_Frozen):
    """R-peaks of whole records (``rpeaks``; see ``ecgops.data.rpeaks``)."""

    method: Literal["xqrs", "xqrs_vote", "study_filtered", "study"]
    fallback: Literal["study_filtered", "study", "none"]
    bandpass_hz: tuple[float, float]
    filter_order: int = Field(ge=1)
    detect_fs: float = Field(gt=0.0)
    clip_quantile: float | None = Field(gt=0.0, lt=1.0)
    clip_factor: float = Field(gt=0.0)
    refine_radius_s: float = Field(ge=0.0)
    refine_direction: Literal["up", "abs"]
    target_refine: int = Field(ge=0)
    vote_leads: list[str]
    vote_share: float = Field(gt=0.0, le=1.0)
    vote_tolerance_s: float = Field(gt=0.0)


class MultileadValidationConfig(_Frozen):
    min_rows: int = Field(ge=0)
    min_per_class: int = Field(ge=0)


class MultileadRecordConfig(_Frozen):
    """Record-level models of the multi-lead runs (``multilead.record``; ecgops/training/
    record_level.py): a logistic model on per-record statistics of beat probabilities."""

    quantiles: list[float] = [0.1, 0.25, 0.5, 0.75, 0.9]
    C: float = Field(default=1.0, gt=0.0)
    select_folds: int = Field(default=5, ge=2)
    max_iter: int = Field(default=1000, ge=1)


class MultileadConfig(_Frozen):
    """Multi-lead PTB-family beats (``multilead``; see ``ecgops.data.multilead``)."""

    leads: list[str] = Field(min_length=1)
    peak_lead: str
    on_missing_lead: Literal["fail", "skip"]
    validation: MultileadValidationConfig
    lead_sets: dict[str, list[str] | Literal["all"]] = {}
    cv: bool = True
    record: MultileadRecordConfig = Field(default_factory=lambda: MultileadRecordConfig())

    def lead_set(self, name: str) -> list[str]:
        """The leads of ``lead_sets[name]`` (``all``: every lead of :attr:`leads`), checked.

        Raises:
            ValueError: an unknown set, or leads the multi-lead table does not hold.
        """
        if name not in self.lead_sets:
            raise ValueError(
                f"unknown lead set {name!r}; multilead.lead_sets has {', '.join(self.lead_sets)}"
            )
        chosen = self.lead_sets[name]
        leads = list(self.leads) if chosen == "all" else list(chosen)
        missing = [lead for lead in leads if lead not in self.leads]
        if missing or not leads:
            raise ValueError(
                f"lead set {name!r} needs lead(s) {', '.join(missing) or '(none given)'}; the "
                f"multi-lead table holds {', '.join(self.leads)} (multilead.leads)"
            )
        return leads


class ContextConfig(_Frozen):
    """How context models read the RR context (``context``; see ecgops/features/context.py)."""

    normalise: Literal["none", "record_mean", "window_mean"]


class MultileadPipelineConfig(_Frozen):
    """Multi-lead runs of the pipeline (``pipeline.multilead``): every net and every classical
    model (on per-lead features, ecgops/training/multilead_classical.py) x every lead set."""

    nets: list[str] = []
    lead_sets: list[str] = []
    classical: list[str] = []


class PipelineConfig(_Frozen):
    tasks: list[Task]
    classical: dict[str, list[str]]
    classical_inputs: dict[str, list[str]]
    deep: dict[str, list[str]]
    multilead: MultileadPipelineConfig = Field(default_factory=lambda: MultileadPipelineConfig())
    pretrain_methods: list[Literal["supervised", "contrastive"]]
    finetune_encoders: list[Literal["supervised", "contrastive"]]
    max_workers: int
    slot_priority: list[str] = []


class SweepConfig(_Frozen):
    """Default grids of the sweep flow (flows/sweep.py): model -> hyperparameter -> values."""

    grids: dict[str, dict[str, list[int | float]]] = Field(default_factory=dict)


class ReportConfig(_Frozen):
    """The results report (``ecgops report``; ecgops/evaluation/report*.py)."""

    examples_per_class: int = Field(default=3, ge=1)


class Config(_Frozen):
    """The whole validated configuration, with the active profile applied."""

    profile: str
    seed: int
    paths: PathsConfig
    tracking: TrackingConfig
    data: DataConfig
    splits: SplitsConfig
    validation: ValidationConfig
    features: FeaturesConfig
    classical: ClassicalConfig
    deep: DeepConfig
    context: ContextConfig
    transfer: TransferConfig
    registry: RegistryConfig
    calibration: CalibrationConfig
    serving: ServingConfig
    annotate: AnnotateConfig
    rpeaks: RpeaksConfig
    multilead: MultileadConfig
    pipeline: PipelineConfig
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    root: Path = Field(exclude=True)

    @model_validator(mode="after")
    def _check_names(self) -> Config:
        check_model_names(self)
        return self

    # ---- resolved locations -------------------------------------------------
    def path(self, name: str) -> Path:
        """Absolute path of a ``paths`` entry (relative entries resolve under the root)."""
        value = getattr(self.paths, name)
        p = Path(value)
        return p if p.is_absolute() else (self.root / p)

    @property
    def raw_source(self) -> Path:
        """Where the raw PhysioNet records come from (read-only)."""
        env = os.environ.get("ECGOPS_DATA_SOURCE")
        if env:
            return Path(env)
        if self.paths.raw_source:
            p = Path(self.paths.raw_source)
            return p if p.is_absolute() else (self.root / p)
        return (self.root.parent / "shared" / "data").resolve()

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: env, then params, then a local SQLite file."""
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        """Where MLflow stores artifacts of experiments that ecgops creates."""
        if self.tracking.artifact_root:
            return self.tracking.artifact_root
        return (self.root / "mlartifacts").as_uri()

    def uses_features(self, tasks: list[str], inputs: list[str] | None = None) -> bool:
        """Whether the classical runs of ``tasks`` read the feature tables.

        Args:
            tasks: the tasks trained.
            inputs: classical inputs for every task (None: ``pipeline.classical_inputs``).
        """
        chosen = [i for t in tasks for i in (inputs or self.pipeline.classical_inputs.get(t, []))]
        return any(i.split("+")[0] == "features" for i in chosen)

    def experiment_name(self, task: str) -> str:
        """One MLflow experiment per dataset/task."""
        return f"{self.tracking.experiment_prefix}-{task}"

    def class_names(self, task: str) -> list[str]:
        """Class names in label order for a task."""
        if task == "mitbih":
            return list(self.data.mitbih.beat_symbols)
        if task in ("ptb", "ptb12"):  # ptb12: the multi-lead PTB table, same classes
            return ["healthy", "MI"]
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def check_model_names(cfg: Config) -> None:
    """Check the model names of ``params.yaml`` against the model registries, once, at load.

    ``pipeline.classical`` must name classical models, ``pipeline.deep`` and the keys of
    ``deep.archs`` registered nets (``pipeline.deep`` names also need a ``deep.archs`` entry;
    ``{net}+rr`` names a context net), ``pipeline.classical_inputs`` known inputs (context ones,
    ``...+rr``, only for tasks with RR context), ``pipeline.multilead`` multi-lead nets of
    ``deep.archs``, classical models and lead sets whose leads the multi-lead table holds, and
    ``data.beat_len`` must be the beat length the schema fixes.

    Args:
        cfg: the configuration being validated.

    Raises:
        ValueError: the first bad name, with the allowed ones.
    """
    from ecgops.schema import BEAT_LEN

    def check(where: str, names: list[str], allowed: tuple[str, ...]) -> None:
        bad = [n for n in names if n not in allowed]
        if bad:
            raise ValueError(
                f"{PARAMS_FILE}: {where}: unknown model {bad[0]!r}; expected one of "
                f"{', '.join(allowed)}"
            )

    for section, registry in (("classical", CLASSICAL_MODELS), ("deep", NET_NAMES)):
        per_task = getattr(cfg.pipeline, section)
        for task, names in per_task.items():
            if task not in TASKS:
                raise ValueError(
                    f"{PARAMS_FILE}: pipeline.{section}: unknown task {task!r}; expected one of "
                    f"{', '.join(TASKS)}"
                )
            bases = [split_context(n)[0] if section == "deep" else n for n in names]
            check(f"pipeline.{section}.{task}", bases, registry)
    check("deep.archs", list(cfg.deep.archs), NET_NAMES)
    for task, names in cfg.pipeline.deep.items():
        bases = [split_context(n)[0] for n in names]
        check(f"pipeline.deep.{task} (no deep.archs entry)", bases, tuple(cfg.deep.archs))
        check_inputs(task, names, "pipeline.deep", deep_config_names(tuple(cfg.deep.archs)))
    for task, inputs in cfg.pipeline.classical_inputs.items():
        check_inputs(task, inputs, "pipeline.classical_inputs", CLASSICAL_INPUTS)
    nets = tuple(n for n in MULTILEAD_NETS if n in cfg.deep.archs)
    check("pipeline.multilead.nets (nets of deep.archs)", cfg.pipeline.multilead.nets, nets)
    check("pipeline.multilead.classical", cfg.pipeline.multilead.classical, CLASSICAL_MODELS)
    for name in cfg.pipeline.multilead.lead_sets:
        cfg.multilead.lead_set(name)  # raises on an unknown set or missing leads
    if cfg.data.beat_len != BEAT_LEN:
        raise ValueError(
            f"{PARAMS_FILE}: data.beat_len is {cfg.data.beat_len}, but beats have {BEAT_LEN} "
            "samples (ecgops.schema.BEAT_LEN); the beat length is not configurable"
        )


def check_inputs(task: str, names: list[str], where: str, allowed: tuple[str, ...]) -> None:
    """Refuse unknown names, and context names (``...+rr``) for a task without RR context.

    Args:
        task: the task the names are configured for.
        names: classical inputs or deep configuration names.
        where: the ``params.yaml`` key, for the message.
        allowed: every known name.

    Raises:
        ValueError: the first bad name.
    """
    if task not in TASKS:
        raise ValueError(f"{PARAMS_FILE}: {where}: unknown task {task!r}; expected {TASKS}")
    for name in names:
        if name not in allowed:
            raise ValueError(
                f"{PARAMS_FILE}: {where}.{task}: unknown {name!r}; expected one of "
                f"{', '.join(allowed)}"
            )
        if split_context(name)[1] and task not in CONTEXT_TASKS:
            raise ValueError(
                f"{PARAMS_FILE}: {where}.{task}: {name!r} reads RR context, which {task} beats "
                f"do not have (only {', '.join(CONTEXT_TASKS)})"
            )


def find_root(start: Path | None = None) -> Path:
    """The project root: ``$ECGOPS_ROOT``, else the nearest parent holding params.yaml."""
    env = os.environ.get("ECGOPS_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PARAMS_FILE).exists():
            return candidate
    pkg_root = Path(__file__).resolve().parent.parent
    if (pkg_root / PARAMS_FILE).exists():
        return pkg_root
    raise FileNotFoundError(
        f"no {PARAMS_FILE} found in {here} or its parents; run ecgops from the project "
        "or set ECGOPS_ROOT"
    )


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, others replace)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(path: Path) -> dict[str, Any]:
    """Read a params file into a plain dict, with a clear error when it is unusable."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return raw


def load_config(
    root: Path | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Load ``params.yaml`` with a profile and optional overrides applied.

    Args:
        root: project root (default: :func:`find_root`).
        profile: profile name; default ``$ECGOPS_PROFILE`` or the file's ``profile``.
        overrides: nested dict merged last (tests and sweeps).

    Returns:
        The validated :class:`Config`.
    """
    root = (root or find_root()).resolve()
    params = load_params(root / PARAMS_FILE)
    profiles = params.pop("profiles", {}) or {}
    chosen = profile or os.environ.get("ECGOPS_PROFILE") or params.get("profile", "full")
    if chosen not in profiles:
        raise ValueError(
            f"{root / PARAMS_FILE}: unknown profile {chosen!r}; expected one of {sorted(profiles)}"
        )
    merged = deep_merge(params, profiles[chosen] or {})
    if overrides:
        merged = deep_merge(merged, overrides)
    merged["profile"] = chosen
    return Config(**merged, root=root)
