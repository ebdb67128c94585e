#!/usr/bin/env python
"""Training throughput of the engine (``ecgops.training.engine.fit``) against a bare torch loop.

For every net of ``ecgops.models`` (``deep.archs``, plus the context net ``cnn+rr`` where the
beats carry RR context) the same net (same seed, same architecture arguments) is trained twice
on the same real beats, with the same batch size, optimizer (AdamW, ``deep.lr`` and
``deep.weight_decay``), loss (cross-entropy with the engine's class weights), torch threads
(``deep.num_threads``) and the same number of optimisation steps:

- **bare**: the textbook loop (``zero_grad``, forward, loss, ``backward``, ``step``) over
  contiguous batch slices, no validation, no shuffling, no bookkeeping;
- **engine**: ``fit`` with ``LoopConfig.from_deep`` (epochs and patience set so that every
  epoch runs), no checkpoint folder, no MLflow.

How validation is kept out of the comparison: the engine validates after every epoch (it has
to, for early stopping and model selection), the bare loop never does. The engine's history
gives each epoch's wall time (training + validation) and its ``FitResult`` the training
seconds alone (``train_beats / train_beats_per_s``); their difference is the validation
overhead, reported on its own and subtracted. The ratio ``engine / bare`` is the engine's
``fit`` wall time minus validation (so it still counts the engine's set-up: input checks,
the checkpoint fingerprint, optimizer and best-weight copies) over the bare loop's time; the
ratio of the training steps alone is reported beside it. Each measurement is repeated and the
fastest repeat kept (the machine is shared). The first call of every net warms torch up
(untimed).

Beats: ``data/processed/mitbih.parquet`` (else ``ptb.parquet``, else the test fixtures).
Prints a markdown table and writes ``outputs/benchmarks/engine.json``.

Usage::

    .venv/bin/python benchmarks/bench_engine.py                     # every net, the `quick` loop
    .venv/bin/python benchmarks/bench_engine.py --nets cnn lstm --steps 10 --epochs 3
    .venv/bin/python benchmarks/bench_engine.py --nets cnn --profile-engine   # cProfile top
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_deep import machine  # noqa: E402

from ecgops.config import Config, load_config  # noqa: E402
from ecgops.io import write_json  # noqa: E402
from ecgops.models import deep_config_names, split_context  # noqa: E402
from ecgops.schema import has_context  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
TASKS = ("mitbih", "ptb")
PROFILE_LINES = 25
NOTES = (
    "measured once on 2 shared cores: the LSTM/BiLSTM gap (about 1.25x) is "
    "torch.use_deterministic_algorithms(True), which the engine's set_seed turns on for "
    "reproducible runs; the bare loop with it on ran at the engine's speed"
)
METHOD = (
    "same net, seed, beats, batch size, AdamW, weighted cross-entropy, torch threads and "
    "number of steps; engine seconds = fit wall time minus its per-epoch validation (epoch "
    "seconds minus the engine's training seconds); fastest of the repeats; ratio = engine "
    "seconds / bare seconds"
)


def load_table(cfg: Config) -> tuple[pd.DataFrame, str, str]:
    """The real beat table to benchmark on: ``(table, task, source)``.

    The processed MIT-BIH table (it carries the RR context), else PTB's, else the fixture
    beats (tiny real cuts of the records). The record scale of the context normalisation is
    added over each whole record, as the training runs do.

    Args:
        cfg: configuration (``paths.processed``).

    Returns:
        The table, its task and the file it came from.
    """
    from ecgops.features.context import with_record_scale

    for task in TASKS:
        for path in (cfg.path("processed") / f"{task}.parquet", FIXTURES / f"beats_{task}.parquet"):
            if path.exists():
                df = pd.read_parquet(path)
                if has_context(df):
                    df = with_record_scale(df)
                source = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                return df, task, str(source)
    raise FileNotFoundError(f"no beat table in {cfg.path('processed')} or {FIXTURES}")


def draw(table: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` beats drawn at random from ``table`` (with replacement when it is smaller)."""
    rng = np.random.default_rng(seed)
    return table.iloc[rng.choice(len(table), size=n, replace=len(table) < n)]


def net_parts(cfg: Config, name: str, train: pd.DataFrame, val: pd.DataFrame) -> tuple:
    """The engine's ``(x, y[, context])`` parts of a deep configuration, as training builds
    them (:func:`ecgops.training.deep.net_part`)."""
    from ecgops.features.context import model_context_columns
    from ecgops.training.deep import net_part

    columns = model_context_columns(cfg.context.normalise) if split_context(name)[1] else []
    return net_part(cfg, train, columns), net_part(cfg, val, columns)


def bare_loop(
    cfg: Config, name: str, n_classes: int, part: tuple, epochs: int, steps: int
) -> float:
    """Seconds of ``epochs x steps`` plain optimisation steps (contiguous batches).

    Args:
        cfg: configuration (``deep``, ``seed``).
        name: a deep configuration (``cnn``, ``cnn+rr`` ...).
        n_classes: number of classes.
        part: the training part ``(x, y[, context])``, ``steps x deep.batch_size`` beats.
        epochs: passes over it.
        steps: batches per pass.

    Returns:
        Wall seconds of the steps.
    """
    from ecgops.models.nets import build_net
    from ecgops.training.deep import arch_kwargs
    from ecgops.training.engine import class_weights

    torch.use_deterministic_algorithms(False)  # the engine's set_seed turns it on: not here
    torch.manual_seed(cfg.seed)
    net = build_net(split_context(name)[0], n_classes, **arch_kwargs(cfg, name)).train()
    x, y = torch.tensor(part[0]), torch.tensor(part[1])  # copies, as the engine makes
    context = torch.tensor(part[2]) if len(part) == 3 else None
    weights = class_weights(part[1], n_classes)
    if cfg.deep.imbalance != "weighted_loss":
        weights = np.ones(n_classes)
    weights = torch.tensor(weights, dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=cfg.deep.lr, weight_decay=cfg.deep.weight_decay
    )
    batch = cfg.deep.batch_size
    started = time.perf_counter()
    for _ in range(epochs):
        for i in range(steps):
            sl = slice(i * batch, (i + 1) * batch)
            optimizer.zero_grad(set_to_none=True)
            logits = net(x[sl]) if context is None else net(x[sl], context=context[sl])
            loss_fn(logits, y[sl]).backward()
            optimizer.step()
    return time.perf_counter() - started


def engine_fit(
    cfg: Config, name: str, n_classes: int, parts: tuple, epochs: int
) -> dict[str, float]:
    """Time one engine ``fit`` of ``epochs`` epochs and split it into its parts.

    Args:
        cfg: configuration (``deep``, ``seed``).
        name: a deep configuration.
        n_classes: number of classes.
        parts: training and validation parts.
        epochs: epochs (patience above it: none stops early).

    Returns:
        Seconds: ``wall`` (the whole call), ``train`` (the training steps, as the engine
        counts them), ``validation`` (epoch time minus training) and ``setup`` (the rest).
    """
    from ecgops.models.nets import build_net
    from ecgops.training.deep import arch_kwargs
    from ecgops.training.engine import FitOptions, LoopConfig, fit, set_seed

    set_seed(cfg.seed)
    net = build_net(split_context(name)[0], n_classes, **arch_kwargs(cfg, name))
    loop = LoopConfig.from_deep(cfg).replace(epochs=epochs, patience=epochs + 1)
    options = FitOptions(device=torch.device("cpu"), log_mlflow=False, desc=name)
    started = time.perf_counter()
    result = fit(net, parts[0], parts[1], loop, n_classes=n_classes, options=options)
    wall = time.perf_counter() - started
    train_s = epochs * len(parts[0][0]) / result.train_beats_per_s
    epoch_s = sum(record["seconds"] for record in result.history)
    return {
        "wall": wall,
        "train": train_s,
        "validation": epoch_s - train_s,
        "setup": wall - epoch_s,
    }


def measure(
    cfg: Config, name: str, n_classes: int, table: pd.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    """Bare and engine throughput of one net (fastest of ``args.repeats`` each)."""
    beats = args.steps * cfg.deep.batch_size
    train = draw(table, beats, cfg.seed)
    val = draw(table, args.val_beats, cfg.seed + 1)
    parts = net_parts(cfg, name, train, val)
    bare_loop(cfg, name, n_classes, parts[0], 1, 1)  # warm-up (lazy initialisation)
    bare, engine = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(cfg, name, n_classes, parts[0], args.epochs, args.steps))
        engine.append(engine_fit(cfg, name, n_classes, parts, args.epochs))
    bare_s = min(bare)
    best = min(engine, key=lambda e: e["wall"] - e["validation"])
    engine_s = best["wall"] - best["validation"]
    trained = args.epochs * beats
    return {
        "net": name,
        "steps": args.epochs * args.steps,
        "train_beats": trained,
        "val_beats": args.val_beats,
        "bare_seconds": bare_s,
        "bare_beats_per_s": trained / bare_s,
        "engine_seconds": best,
        "engine_beats_per_s": trained / engine_s,
        "engine_train_beats_per_s": trained / best["train"],
        "engine_all_in_beats_per_s": trained / best["wall"],
        "ratio_engine_over_bare": engine_s / bare_s,
        "ratio_train_steps": best["train"] / bare_s,
        "validation_s_per_epoch": best["validation"] / args.epochs,
        "validation_beats_per_s": args.epochs * args.val_beats / best["validation"],
        "validation_share_of_fit": best["validation"] / best["wall"],
        "repeats": {"bare": bare, "engine": engine},
    }


def profile_engine(cfg: Config, name: str, n_classes: int, table: pd.DataFrame, args) -> str:
    """cProfile's top functions (cumulative time) of one engine fit."""
    beats = args.steps * cfg.deep.batch_size
    parts = net_parts(cfg, name, draw(table, beats, cfg.seed), draw(table, args.val_beats, 1))
    profiler = cProfile.Profile()
    profiler.runcall(engine_fit, cfg, name, n_classes, parts, args.epochs)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(PROFILE_LINES)
    return out.getvalue()


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    lines = [
        "| net | steps | bare beats/s | engine beats/s (no val) | engine / bare | "
        "train steps only | val s/epoch | val share of fit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['net']} | {r['steps']} | {r['bare_beats_per_s']:,.0f} | "
            f"{r['engine_beats_per_s']:,.0f} | {r['ratio_engine_over_bare']:.2f}x | "
            f"{r['ratio_train_steps']:.2f}x | {r['validation_s_per_epoch']:.2f} | "
            f"{r['validation_share_of_fit']:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure every net, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="+", default=None, help="default: every deep config")
    parser.add_argument("--profile", default="quick", help="config profile of the deep loop")
    parser.add_argument("--steps", type=int, default=8, help="optimisation steps per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--val-beats", type=int, default=1024, help="validation beats")
    parser.add_argument("--repeats", type=int, default=2, help="fastest of this many")
    parser.add_argument("--profile-engine", action="store_true", help="cProfile each fit")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cfg = load_config(root=ROOT, profile=args.profile)
    table, task, source = load_table(cfg)
    cfg = cfg.model_copy(update={"deep": cfg.deep.for_task(task)})
    n_classes = len(cfg.class_names(task))
    names = deep_config_names(tuple(cfg.deep.archs))
    if not has_context(table):
        names = tuple(n for n in names if not split_context(n)[1])
    nets = args.nets or [n for n in names if not n.endswith("+rr") or n == "cnn+rr"]
    from ecgops.training.engine import select_device

    select_device("cpu", cfg.deep.num_threads)
    print(f"{source}: {len(table):,} beats ({task}), {torch.get_num_threads()} torch thread(s)")
    start_machine = machine()
    rows, profiles = [], {}
    for name in nets:
        rows.append(measure(cfg, name, n_classes, table, args))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        if args.profile_engine:
            profiles[name] = profile_engine(cfg, name, n_classes, table, args)
            print(profiles[name])
    table_md = markdown(rows)
    print("\n" + table_md)
    out = args.out or cfg.path("outputs") / "benchmarks" / "engine.json"
    write_json(
        {
            "machine_start": start_machine,
            "machine_end": machine(),
            "data": {"source": source, "task": task, "beats": len(table)},
            "loop": {
                "profile": args.profile,
                "batch_size": cfg.deep.batch_size,
                "threads": torch.get_num_threads(),
                "grad_clip": cfg.deep.grad_clip,
                "imbalance": cfg.deep.imbalance,
                "epochs": args.epochs,
                "steps_per_epoch": args.steps,
                "repeats": args.repeats,
            },
            "method": METHOD,
            "notes": NOTES,
            "results": rows,
            "profiles": profiles,
            "table": table_md,
        },
        out,
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
