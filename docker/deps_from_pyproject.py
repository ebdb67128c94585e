"""Write the image build's pip inputs from pyproject.toml and requirements.lock.

The Dockerfiles install the dependencies in a layer of their own, before the package. Feeding
that layer these two generated files (instead of pyproject.toml itself) keeps it cached when
only tool settings, the version or the code change.

Usage: python deps_from_pyproject.py PYPROJECT LOCK EXTRAS TORCH_VERSION OUT_DIR
  EXTRAS         comma-separated optional-dependency groups ("" for none)
  TORCH_VERSION  "" keeps the lock's torch pin; else the pin becomes torch==TORCH_VERSION
Writes OUT_DIR/requirements.txt (dependencies + extras) and OUT_DIR/constraints.txt (the lock).
Standard library only (runs in the bare base image).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Dependencies of the project plus the chosen optional groups.

    Args:
        pyproject: path of pyproject.toml.
        extras: names of ``[project.optional-dependencies]`` groups to add.

    Returns:
        Requirement strings, in file order.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    groups = project.get("optional-dependencies", {})
    missing = [e for e in extras if e not in groups]
    if missing:
        raise SystemExit(f"{pyproject}: no optional-dependencies group {missing}")
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += groups[extra]
    return reqs


def constraints(lock: Path, torch_version: str) -> str:
    """The lock file's text, with the torch pin replaced when a version is given.

    Args:
        lock: path of requirements.lock.
        torch_version: e.g. ``2.13.0`` (GPU build); empty keeps the lock's pin.

    Returns:
        The constraints file content.
    """
    text = lock.read_text()
    if torch_version:
        text, n = re.subn(r"(?m)^torch==\S+", f"torch=={torch_version}", text)
        if n != 1:
            raise SystemExit(f"{lock}: expected one torch== pin, found {n}")
    return text


def main(argv: list[str]) -> int:
    """Write requirements.txt and constraints.txt.

    Args:
        argv: PYPROJECT LOCK EXTRAS TORCH_VERSION OUT_DIR.

    Returns:
        Process exit code.
    """
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    pyproject, lock, extras, torch_version, out_dir = argv
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = [e.strip() for e in extras.split(",") if e.strip()]
    reqs = requirements(Path(pyproject), groups)
    (out / "requirements.txt").write_text("\n".join(reqs) + "\n")
    (out / "constraints.txt").write_text(constraints(Path(lock), torch_version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
