"""``ecgops data ...``: raw records -> beat tables -> splits (thin wrappers).

Errors (:class:`~ecgops.errors.EcgopsError`) are raised, not printed: the main ``ecgops``
app reports them as one line on stderr with exit status 1.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from ecgops.config import TASKS, Config, load_config

app = typer.Typer(help="Raw data, heartbeat tables, splits and the Kaggle CSV layout.")

ProfileOption = typer.Option(None, "--profile", "-p", help="smoke | quick | full")


class TaskChoice(StrEnum):
    """A task, or all of them."""

    ptb = "ptb"
    mitbih = "mitbih"
    ptb12 = "ptb12"  # multi-lead PTB beats (ecgops.data.multilead); not part of ``all``
    all = "all"


def _tasks(task: TaskChoice) -> list[str]:
    return list(TASKS) if task == TaskChoice.all else [task.value]


def _config(profile: str | None) -> Config:
    return load_config(profile=profile)


@app.command("import-raw")
def import_raw_cmd(profile: str | None = ProfileOption) -> None:
    """Copy the raw PhysioNet folders into data/raw, verifying their SHA256 sums."""
    from ecgops.data.raw import import_raw

    cfg = _config(profile)
    target = import_raw(cfg)
    typer.echo(f"raw data from {cfg.raw_source} verified and copied to {target}")


@app.command()
def fetch(
    dest: Path | None = typer.Option(None, help="target folder (default: the raw source)"),
    source: list[str] | None = typer.Option(None, help="mitdb, ptbxl, ptbdb (default all)"),
    profile: str | None = ProfileOption,
) -> None:
    """Download the databases from PhysioNet (needs the internet; tests never do)."""
    from ecgops.data.raw import fetch_raw

    target = fetch_raw(_config(profile), dest, source or None)
    typer.echo(f"downloaded into {target}")


@app.command()
def build(
    task: TaskChoice = typer.Option(TaskChoice.all, help="ptb | mitbih | ptb12 | all"),
    profile: str | None = ProfileOption,
) -> None:
    """Cut heartbeats from data/raw into validated data/processed/{task}.parquet."""
    from ecgops.data.build import build_task
    from ecgops.data.multilead import TASK, build_multilead

    cfg = _config(profile)
    for t in _tasks(task):
        path = build_multilead(cfg) if t == TASK else build_task(cfg, t)
        typer.echo(f"{t}: {path}  {_counts_line(cfg, t)}")


@app.command()
def split(
    task: TaskChoice = typer.Option(TaskChoice.all, help="ptb | mitbih | ptb12 | all"),
    profile: str | None = ProfileOption,
) -> None:
    """Write data/splits/{task}.parquet (beat and patient schemes, grouped folds)."""
    from ecgops.data.multilead import TASK
    from ecgops.data.multilead_splits import make_multilead_splits
    from ecgops.data.splits import make_splits, split_summary_path
    from ecgops.io import read_json

    cfg = _config(profile)
    for t in _tasks(task):
        path = make_multilead_splits(cfg) if t == TASK else make_splits(cfg, t)
        counts = read_json(split_summary_path(cfg, t))["counts"]
        line = "; ".join(
            f"{scheme}: " + " / ".join(f"{p} {c['rows']}" for p, c in parts.items())
            for scheme, parts in counts.items()
        )
        typer.echo(f"{t}: {path}  {line}")


@app.command("import-kaggle")
def import_kaggle_cmd(
    directory: Path = typer.Argument(..., help="folder with the Kaggle CSVs"),
    profile: str | None = ProfileOption,
) -> None:
    """Import mitbih_train/test.csv and ptbdb_normal/abnormal.csv as the beat tables."""
    from ecgops.data.kaggle import import_kaggle

    cfg = _config(profile)
    for t, path in import_kaggle(cfg, directory).items():
        typer.echo(f"{t}: {path}  {_counts_line(cfg, t)}")


@app.command("export-kaggle")
def export_kaggle_cmd(
    directory: Path = typer.Argument(..., help="output folder"),
    profile: str | None = ProfileOption,
) -> None:
    """Write the beat tables as the four Kaggle CSVs (MIT-BIH train/test from the beat split)."""
    from ecgops.data.kaggle import export_kaggle

    for name, path in export_kaggle(_config(profile), directory).items():
        typer.echo(f"{name}: {path}")


@app.command()
def summary(
    task: TaskChoice = typer.Option(TaskChoice.all, help="ptb | mitbih | ptb12 | all"),
    profile: str | None = ProfileOption,
) -> None:
    """Print the beat counts per class of the built tables."""
    cfg = _config(profile)
    for t in _tasks(task):
        typer.echo(f"{t}: {_counts_line(cfg, t)}")


def _counts_line(cfg: Config, task: str) -> str:
    """``<n> beats: N 1 / S 2 ...`` from the summary JSON (or the table)."""
    import pandas as pd

    from ecgops.data.build import class_counts, summary_path, table_path
    from ecgops.errors import DataError
    from ecgops.io import read_json

    path = summary_path(cfg, task)
    names = cfg.class_names("ptb" if task == "ptb12" else task)  # ptb12: the PTB classes
    if path.is_file():
        counts = read_json(path)["per_class"]
    else:
        table = table_path(cfg, task)
        if not table.is_file():
            raise DataError(table, f"not built; run `ecgops data build --task {task}`")
        counts = class_counts(pd.read_parquet(table, columns=["label"])["label"], names)
    total = sum(counts.values())
    return f"{total} beats: " + " / ".join(f"{k} {counts.get(k, 0)}" for k in names)
