"""The ``ecgops`` command line: thin commands over the package's functions.

Every command loads the typed config (``params.yaml`` + profile) and calls one function; heavy
libraries are imported inside the commands so ``ecgops --help`` stays fast. Errors that ecgops
raises on purpose (bad data, failed validation, registry refusals) print one clear line and exit
with status 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ecgops.config import Config, load_config
from ecgops.errors import EcgopsError
from ecgops.stages import PRETRAIN_SCHEME

app = typer.Typer(
    help="ecgops: ECG heartbeat classification platform (data, training, registry, serving).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train and evaluate models (tracked in MLflow).", no_args_is_help=True)
features_app = typer.Typer(help="Time-series features of the beats.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(features_app, name="features")
stages_app = typer.Typer(help="The pipeline's stage table (dvc.yaml).", no_args_is_help=True)
app.add_typer(stages_app, name="stages")

TaskOpt = Annotated[str, typer.Option("--task", "-t", help="ptb or mitbih")]
SchemeOpt = Annotated[str, typer.Option("--scheme", "-s", help="beat or patient split")]
REFUSED_EXIT = 3
"""Exit status of ``ecgops promote --strict`` when the gate refused a challenger."""


def _mount_data_app() -> None:
    from ecgops.data.cli import app as data_app

    app.add_typer(data_app, name="data", help="Raw records -> validated heartbeat tables.")


_mount_data_app()


@app.callback()
def _main(
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="smoke, quick or full (default: params)")
    ] = None,
) -> None:
    """Select the profile for every command (sets ECGOPS_PROFILE)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # The ephemeral Prefect server migrates its database on first start: allow a loaded machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    _configure_logging()
    if profile:
        os.environ["ECGOPS_PROFILE"] = profile


def _configure_logging() -> None:
    """ecgops at INFO on stderr; chatty libraries at WARNING."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("great_expectations", "mlflow", "alembic", "urllib3", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cfg() -> Config:
    return load_config()


def _tasks(task: str) -> list[str]:
    return ["ptb", "mitbih"] if task == "all" else [task]


def _echo_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


@app.command()
def config(
    sections_dir: Annotated[
        Path | None, typer.Option(help="write one resolved JSON per section here (DVC deps)")
    ] = None,
    code: Annotated[
        bool, typer.Option("--code", help="also write each stage's code file (outputs/code)")
    ] = False,
) -> None:
    """Print the resolved configuration (profile applied), or write it per section."""
    from ecgops.code_files import write_code_files
    from ecgops.param_files import write_sections

    cfg = _cfg()
    if sections_dir is None:
        _echo_json(cfg.model_dump(mode="json"))
        return
    write_sections(cfg, sections_dir)
    typer.echo(f"resolved params ({cfg.profile}) -> {sections_dir}")
    if code:
        written = write_code_files(cfg)
        typer.echo(f"code of {len(written)} stages -> {written[0].parent}")


@app.command()
def validate(task: TaskOpt = "all") -> None:
    """Validate processed beat tables with Great Expectations (report under outputs/validation)."""
    from ecgops.data.validation import validate_task

    cfg = _cfg()
    for t in _tasks(task):
        report = validate_task(cfg, t)
        typer.echo(f"{t}: validation passed ({report.n_rows} rows, classes {report.class_counts})")


@features_app.command("build")
def features_build(task: TaskOpt = "all") -> None:
    """Extract the configured feature set for a task (cached DVC stage)."""
    from ecgops.features.tsfeatures import build_features

    cfg = _cfg()
    for t in _tasks(task):
        typer.echo(f"{t}: features -> {build_features(cfg, t)}")


@train_app.command("classical")
def train_classical(
    task: TaskOpt,
    scheme: SchemeOpt = "beat",
    model: Annotated[str, typer.Option(help="lr, rf or lgbm")] = "lgbm",
    input: Annotated[
        str | None, typer.Option("--input", help="raw or features (default raw)")
    ] = None,
    leads: Annotated[
        str | None, typer.Option(help="task ptb12: a multilead.lead_sets name (e.g. ii, all)")
    ] = None,
) -> None:
    """Train one classical model (LR / RF / LightGBM) on raw beats or features.

    ``--task ptb12`` trains it on per-lead features of the leads of ``--leads`` (default
    ``all``; its input is per-lead features only).
    """
    keys = ("name", "scheme", "test", "cv", "mlflow_run_id")
    if task == "ptb12":
        if input not in (None, "features"):
            raise typer.BadParameter("--task ptb12 reads per-lead features: --input features")
        from ecgops.training.multilead_classical import train_multilead_classical

        record = train_multilead_classical(_cfg(), scheme, model, leads or "all")
        _echo_json({k: record.get(k) for k in (*keys, "record")})
        return
    if leads:
        raise typer.BadParameter("--leads is for --task ptb12 (the multi-lead table)")
    from ecgops.training.classical import train_classical as run

    record = run(_cfg(), task, scheme, model, input or "raw")
    _echo_json({k: record.get(k) for k in keys})


@train_app.command("deep")
def train_deep(
    task: TaskOpt,
    scheme: SchemeOpt = "beat",
    model: Annotated[str, typer.Option(help="lstm, bilstm, cnn, rescnn or transformer")] = "cnn",
    leads: Annotated[
        str | None, typer.Option(help="task ptb12: a multilead.lead_sets name (e.g. ii, all)")
    ] = None,
) -> None:
    """Train one deep model (PyTorch) with early stopping and checkpoints.

    ``--task ptb12`` trains a multi-lead net (cnn, rescnn, transformer) on the leads of
    ``--leads`` (default ``all``).
    """
    keys = ("name", "scheme", "test", "cv", "mlflow_run_id")
    if task == "ptb12":
        from ecgops.training.multilead import train_multilead

        record = train_multilead(_cfg(), scheme, model, leads or "all")
        _echo_json({k: record.get(k) for k in (*keys, "record")})
        return
    if leads:
        raise typer.BadParameter("--leads is for --task ptb12 (the multi-lead table)")
    from ecgops.training.deep import train_deep as run

    record = run(_cfg(), task, scheme, model)
    _echo_json({k: record.get(k) for k in keys})


@train_app.command("pretrain")
def train_pretrain(
    method: Annotated[str, typer.Option(help="supervised or contrastive")] = "contrastive",
    scheme: SchemeOpt = PRETRAIN_SCHEME,
) -> None:
    """Pretrain the 16-d encoder on MIT-BIH (supervised or contrastive).

    The fine-tunes of both PTB schemes start from the ``patient``-scheme encoder (DS1).
    """
    from ecgops.training.pretrain import pretrain

    _echo_json(pretrain(_cfg(), method, scheme))


@train_app.command("finetune")
def train_finetune(
    encoder: Annotated[str, typer.Option(help="supervised, contrastive or scratch")],
    strategy: Annotated[str, typer.Option(help="A (frozen), B (all), C (head then all)")] = "B",
    scheme: SchemeOpt = "beat",
) -> None:
    """Fine-tune a pretrained encoder on PTB with strategy A, B or C (or train from scratch)."""
    from ecgops.training.finetune import finetune

    record = finetune(_cfg(), scheme, encoder, strategy)
    _echo_json({k: record.get(k) for k in ("name", "scheme", "test", "cv", "mlflow_run_id")})


KindOpt = Annotated[
    str,
    typer.Option(
        "--kind", help="morphology (ecgops-<task>), context (ecgops-mitbih-context) or all"
    ),
]


def _kinds(task: str, kind: str) -> list[str]:
    """The registered model kinds of ``task`` selected by ``--kind`` (none it lacks)."""
    from ecgops.errors import RegistryError
    from ecgops.registry.client import MODEL_KINDS, model_kinds

    if kind != "all" and kind not in MODEL_KINDS:
        raise RegistryError(f"unknown kind {kind!r}; expected all, {', '.join(MODEL_KINDS)}")
    return [k for k in model_kinds(task) if kind in ("all", k)]


@app.command()
def register(task: TaskOpt = "all", kind: KindOpt = "all") -> None:
    """Register each task's best run (by validation metric) as the `challenger`, one per kind:
    morphology-only models as ecgops-<task>, models that read the RR context as
    ecgops-<task>-context (mitbih)."""
    from ecgops.registry.register import register_best

    cfg = _cfg()
    for t in _tasks(task):
        for k in _kinds(t, kind):
            version = register_best(cfg, t, kind=k)
            if version is None:
                typer.echo(f"{t}: no {k} run with a logged model to register")
            else:
                typer.echo(f"{t}: {version.name} version {version.version} is the challenger")


@app.command()
def promote(
    task: TaskOpt = "all",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the decision only")] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="restore the previous champion")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help=f"exit {REFUSED_EXIT} when a challenger is refused"),
    ] = False,
    kind: KindOpt = "all",
) -> None:
    """Promotion gate on the sealed gate set: the challenger becomes champion only if it passes
    every check and beats the champion beyond noise (lower bound of the paired bootstrap
    interval of the difference above registry.margin). Both scores, their intervals and the
    difference's interval are printed (--dry-run: nothing changes)."""
    from ecgops.registry import promote as P

    cfg = _cfg()
    refused = []
    pairs = [(t, k) for t in _tasks(task) for k in _kinds(t, kind)]
    for t, k in pairs:
        if rollback:  # --kind all rolls back the morphology model only
            if kind != "all" or k == "morphology":
                typer.echo(P.rollback(cfg, t, kind=k))
            continue
        decision = P.promote(cfg, t, dry_run=dry_run, kind=k)
        typer.echo(decision)
        if decision.action == "refused":
            refused.append(decision.model)
    if strict and refused:
        typer.echo(f"refused: {', '.join(refused)} (champion unchanged)", err=True)
        raise typer.Exit(REFUSED_EXIT)


@app.command()
def predict(
    output: Annotated[Path, typer.Option("--output", "-o", help="output CSV")],
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Kaggle-layout CSV")] = None,
    record: Annotated[
        list[str] | None, typer.Option("--record", help="WFDB record path (no extension)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="model URI, e.g. models:/ecgops-ptb@champion")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="use this task's champion")
    ] = None,
) -> None:
    """Batch prediction on a CSV of beats, or record-level diagnosis of WFDB records.

    ``--input`` uses the task's single-lead champion; ``--record`` its multi-lead champion for
    records that have that model's leads, else the single-lead one.
    """
    from ecgops import predict as P
    from ecgops.registry.model import resolve_model_uri

    cfg = _cfg()
    uri = resolve_model_uri(cfg, task=task, model=model)
    if record:
        if not task:
            raise typer.BadParameter("--record needs --task (ptb or mitbih)")
        paths = [Path(r) for r in record]  # no --model: the multi-lead champion where it fits
        summary = P.predict_records(cfg, task, paths, output, model_uri=uri if model else None)
    elif input is not None:
        summary = P.predict_csv(uri, input, output, cfg=cfg)
    else:
        raise typer.BadParameter("give --input CSV or --record PATH")
    _echo_json(summary)


@app.command()
def annotate(
    record: Annotated[
        list[str], typer.Option("--record", help="WFDB record path (no extension), repeatable")
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="where <record>.csv etc. go")],
    task: Annotated[str, typer.Option("--task", "-t", help="mitbih")] = "mitbih",
    reference_peaks: Annotated[
        bool, typer.Option("--reference-peaks", help="R-peaks from the record's .atr beats")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="model URI (default: models:/ecgops-mitbih@champion)")
    ] = None,
) -> None:
    """Label every beat of WFDB records (CSV + WFDB annotation file per record)."""
    from ecgops.prediction.annotate import annotate_records

    summary = annotate_records(
        _cfg(), task, record, out_dir, reference_peaks=reference_peaks, model_uri=model
    )
    _echo_json(summary)


@app.command("evaluate-annotations")
def evaluate_annotations(
    ref_dir: Annotated[Path, typer.Option("--ref-dir", help="reference records (.hea, .atr)")],
    test_dir: Annotated[Path, typer.Option("--test-dir", help="`ecgops annotate` output")],
    out: Annotated[
        Path | None, typer.Option("--out", help="table file (.csv; the .json goes beside it)")
    ] = None,
) -> None:
    """Beat-by-beat Se / +P of annotations against reference annotations (ANSI/AAMI EC57)."""
    from ecgops.evaluation.beat_matching import evaluate_directory, format_table

    cfg = _cfg()
    result = evaluate_directory(cfg, ref_dir, test_dir, out or test_dir / "beat_matching.csv")
    typer.echo(format_table(result["table"], result["classes"]))


@app.command()
def serve(
    task: Annotated[str | None, typer.Option("--task", "-t")] = "ptb",
    model: Annotated[
        str | None, typer.Option(help="model URI (default: the task's champion)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default from params.yaml)")] = None,
) -> None:
    """Serve a registered model over HTTP (MLflow scoring server) on 127.0.0.1."""
    from ecgops.serve import serve as run

    raise typer.Exit(run(_cfg(), task=task, model=model, host=host, port=port))


@app.command()
def report() -> None:
    """Write the results report (HTML + Markdown) from metrics files and MLflow runs."""
    from ecgops.evaluation.report import build_report

    for path in build_report(_cfg()):
        typer.echo(f"wrote {path}")


@app.command()
def pipeline(
    tasks: Annotated[list[str] | None, typer.Option("--task", "-t", help="repeatable")] = None,
    max_workers: Annotated[int | None, typer.Option(help="trainings at once")] = None,
    kaggle_dir: Annotated[Path | None, typer.Option(help="import Kaggle CSVs instead")] = None,
    promote: Annotated[bool, typer.Option(help="run the promotion gate")] = True,
    report: Annotated[bool, typer.Option(help="write the results report")] = True,
    transfer_deployment: Annotated[
        str | None, typer.Option(help="send the transfer track to this deployment (GPU pool)")
    ] = None,
) -> None:
    """Run the whole pipeline as a Prefect flow (ephemeral local server by default)."""
    from ecgops.orchestration.runner import run_pipeline

    cfg = _cfg()
    params: dict[str, object] = {"promote": promote, "report": report}
    if tasks:
        params["tasks"] = tasks
    if max_workers:
        params["max_workers"] = max_workers
    if kaggle_dir:
        params["kaggle_dir"] = str(kaggle_dir)
    if transfer_deployment:
        params["transfer_deployment"] = transfer_deployment
    run_pipeline(cfg.profile, **params)


@stages_app.command("dvc-yaml")
def stages_dvc_yaml(
    check: Annotated[
        bool, typer.Option("--check", help="exit 1 when a dvc.yaml differs from the table")
    ] = False,
) -> None:
    """Write dvc.yaml (and pipelines/sources/dvc.yaml) from the stage table, or check them."""
    from ecgops.config import find_root
    from ecgops.dvc_yaml import DVC_FILES, dvc_yaml

    root = find_root()
    stale = False
    for file in DVC_FILES:
        target, text = root / file, dvc_yaml(root, file)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            typer.echo(f"wrote {target}")
        elif (target.read_text() if target.exists() else "") != text:
            typer.echo(f"{target} differs from the stage table: run `ecgops stages dvc-yaml`")
            stale = True
        else:
            typer.echo(f"{target} is up to date")
    if stale:
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: clear one-line errors for expected failures."""
    try:
        app()
    except EcgopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
