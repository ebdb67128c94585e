"""Training and inference throughput (beats/s) of every deep model on this machine.

A fixed number of batches per measurement (after warm-up batches), on beats of realistic
lengths (the processed PTB table when present, else synthetic beats with trailing zero
padding). Variants: batch sizes, CPU threads, ``torch.compile`` (inductor) and the
transformer's patch size. Prints a markdown table and writes ``outputs/benchmarks/deep.json``.

channels-last is not benchmarked: it is a memory format of 4-D (N, C, H, W) tensors, and the
nets here use 1-D convolutions on 3-D (N, C, L) tensors, where it does not apply.

Usage::

    .venv/bin/python benchmarks/bench_deep.py                   # every model, default sizes
    .venv/bin/python benchmarks/bench_deep.py --models cnn rescnn --batch-sizes 128 256 512 \
        --threads 1 2 --compile
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgops.config import load_config
from ecgops.io import write_json
from ecgops.models.nets import build_net
from ecgops.schema import BEAT_LEN

WARMUP_BATCHES = 2


def beats(cfg: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` beats and labels: real PTB beats when the table exists, else synthetic ones."""
    rng = np.random.default_rng(seed)
    table = cfg.path("processed") / "ptb.parquet"
    if table.exists():
        import pandas as pd

        from ecgops.schema import labels, signals

        df = pd.read_parquet(table)
        idx = rng.choice(len(df), size=n, replace=len(df) < n)
        return signals(df)[idx], labels(df)[idx]
    x = rng.random((n, BEAT_LEN), dtype=np.float32)
    lengths = rng.integers(90, BEAT_LEN + 1, size=n)
    x[np.arange(BEAT_LEN)[None, :] >= lengths[:, None]] = 0.0
    return x, rng.integers(0, 2, size=n)


def measure(
    name: str,
    arch: dict[str, Any],
    batch_size: int,
    n_batches: int,
    threads: int,
    compiled: bool,
    cfg: Any,
) -> dict[str, Any]:
    """Train and inference beats/s of one variant."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_net(name, 2, **arch)
    model = torch.compile(net) if compiled else net
    x, y = beats(cfg, batch_size * (n_batches + WARMUP_BATCHES), seed=0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step(i: int) -> None:
        sl = slice(i * batch_size, (i + 1) * batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(xt[sl]), yt[sl]).backward()
        optimizer.step()

    model.train()
    started = time.perf_counter()
    for i in range(WARMUP_BATCHES):
        train_step(i)
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(WARMUP_BATCHES, WARMUP_BATCHES + n_batches):
        train_step(i)
    train_s = time.perf_counter() - started

    model.eval()
    with torch.inference_mode():
        for i in range(WARMUP_BATCHES):
            model(xt[i * batch_size : (i + 1) * batch_size])
        started = time.perf_counter()
        for i in range(WARMUP_BATCHES, WARMUP_BATCHES + n_batches):
            torch.softmax(model(xt[i * batch_size : (i + 1) * batch_size]), dim=1)
        infer_s = time.perf_counter() - started
    beats_done = batch_size * n_batches
    return {
        "model": name,
        "arch": arch,
        "batch_size": batch_size,
        "threads": threads,
        "compiled": compiled,
        "n_parameters": sum(p.numel() for p in net.parameters()),
        "batches": n_batches,
        "warmup_seconds": warmup_s,
        "train_beats_per_s": beats_done / train_s,
        "infer_beats_per_s": beats_done / infer_s,
    }


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and the load at measurement time (shared machines)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "load_average": list(os.getloadavg()),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    lines = [
        "| model | variant | batch | threads | compiled | params | train beats/s | infer beats/s |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        variant = f"patch {r['arch']['patch']}" if r["model"] == "transformer" else ""
        lines.append(
            f"| {r['model']} | {variant} | {r['batch_size']} | {r['threads']} | "
            f"{'yes' if r['compiled'] else 'no'} | {r['n_parameters']:,} | "
            f"{r['train_beats_per_s']:,.0f} | {r['infer_beats_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run every variant, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, help="default: deep.archs")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None)
    parser.add_argument("--threads", nargs="+", type=int, default=None)
    parser.add_argument("--batches", type=int, default=5, help="measured batches per variant")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    parser.add_argument(
        "--patches",
        nargs="+",
        type=int,
        default=None,
        help="transformer patch sizes (default: the configured one)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cfg = load_config()
    models = args.models or list(cfg.deep.archs)
    batch_sizes = args.batch_sizes or [cfg.deep.batch_size]
    threads = args.threads or [cfg.deep.num_threads or len(os.sched_getaffinity(0))]
    start_machine = machine()
    rows = []
    for name in models:
        base = cfg.deep.archs[name]
        archs = [base]
        if name == "transformer" and args.patches:
            archs = [{**base, "patch": p} for p in args.patches]
        for arch in archs:
            for batch_size in batch_sizes:
                for n_threads in threads:
                    for compiled in [False, True] if args.compile else [False]:
                        try:
                            row = measure(
                                name, arch, batch_size, args.batches, n_threads, compiled, cfg
                            )
                        except Exception as exc:  # noqa: BLE001 - compile may be unsupported
                            print(f"{name} batch {batch_size} compiled={compiled}: {exc}")
                            continue
                        rows.append(row)
                        print(markdown([row]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print("\n" + table)
    out = args.out or cfg.path("outputs") / "benchmarks" / "deep.json"
    write_json(
        {
            "machine_start": start_machine,
            "machine_end": machine(),
            "results": rows,
            "notes": "channels-last does not apply to 1-D convolutions (3-D tensors).",
        },
        out,
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
