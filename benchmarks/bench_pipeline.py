#!/usr/bin/env python
"""Time the pipeline's stages of this checkout against another git revision, side by side.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_pipeline.py --rev HEAD~1 [--profile smoke]
        [--stages build split deep-ptb] [--limit 3]

Each side runs every stage instance of the stage table (``ecgops/stages.py``, the matrices
expanded from this checkout's config, in pipeline order) as its ``ecgops`` command, in a fresh
throwaway project: this checkout's code, and the revision's code exported with ``git archive``
(read-only on the repository: no worktree, no checkout). Both use this virtual environment and
the repository's raw fixtures (``tests/fixtures/raw``) on the smoke profile by default.
Measured per command: wall seconds and the CPU seconds of the command's process tree.
Results are printed and written to ``outputs/benchmarks/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecgops.config import load_config  # noqa: E402
from ecgops.stages import STAGES  # noqa: E402


def stage_commands(profile: str, names: list[str] | None) -> list[tuple[str, str]]:
    """``(instance, command)`` per stage instance, matrices expanded from the config."""
    cfg = load_config(root=ROOT, profile=profile)
    params = cfg.model_dump(mode="json")
    out = []
    for st in STAGES:
        if not st.dvc or (names and st.name not in names):
            continue
        combos: list[dict[str, Any]] = [dict(st.fixed)]
        for name, source in st.matrix:
            values: Any = params
            for key in source.split("."):
                values = values[key]
            combos = [{**c, name: v} for c in combos for v in values]
        for combo in combos:
            label = "@".join([st.name, *(str(combo[n]) for n, _ in st.matrix)])
            out.append((label, st.cmd.format(**combo, params_dir="outputs/params")))
    return out


def export_rev(rev: str, target: Path) -> Path:
    """The files of a git revision in ``target`` (``git archive``: nothing in the repo changes)."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def run_side(code: Path, project: Path, profile: str, commands: list[tuple[str, str]]) -> dict:
    """Run the commands with ``code`` in a fresh project; wall and CPU seconds per command."""
    project.mkdir(parents=True)
    shutil.copy(code / "params.yaml", project / "params.yaml")
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "ECGOPS_ROOT": str(project),
        "ECGOPS_PROFILE": profile,
        "ECGOPS_DATA_SOURCE": str(ROOT / "tests" / "fixtures" / "raw"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    times = {}
    for label, command in commands:
        wall, cpu, ok = 0.0, 0.0, True
        for part in command.split("&&"):
            args = [sys.executable, "-m", "ecgops.cli", *shlex.split(part)[1:]]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run(args, cwd=project, env=env, capture_output=True, check=False)
            wall += time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            ok = ok and proc.returncode == 0
        times[label] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "ok": ok}
        print(f"  {label}: {wall:.1f} s{'' if ok else ' (FAILED)'}", flush=True)
    return times


def main() -> None:
    """Run both sides and print the stages side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="git revision to compare against")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--stages", nargs="*", help="stage names (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N stage instances")
    args = parser.parse_args()

    commands = stage_commands(args.profile, args.stages)[: args.limit]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        base = Path(tmp)
        print(f"this checkout ({len(commands)} stage instances):", flush=True)
        current = run_side(ROOT, base / "current-project", args.profile, commands)
        print(f"revision {args.rev}:", flush=True)
        code = export_rev(args.rev, base / "rev")
        other = run_side(code, base / "rev-project", args.profile, commands)

    print(f"\n| stage | wall s (this) | wall s ({args.rev}) | this / {args.rev} |")
    print("|---|---|---|---|")
    for label, _ in commands:
        a, b = current[label], other[label]
        ratio = f"{a['wall_s'] / b['wall_s']:.2f}" if b["wall_s"] and a["ok"] and b["ok"] else ""
        print(
            f"| {label} | {a['wall_s']:.1f}{'' if a['ok'] else ' !'} | "
            f"{b['wall_s']:.1f}{'' if b['ok'] else ' !'} | {ratio} |"
        )
    total = {
        side: sum(t["wall_s"] for t in res.values())
        for side, res in (("this", current), (args.rev, other))
    }
    print(f"\ntotal wall s: this {total['this']:.1f}, {args.rev} {total[args.rev]:.1f}")
    cfg = load_config(root=ROOT, profile=args.profile)
    target = cfg.path("outputs") / "benchmarks" / "pipeline.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "rev": args.rev,
        "profile": args.profile,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "this": current,
        "other": other,
    }
    target.write_text(json.dumps(result, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
