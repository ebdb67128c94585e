"""Security defaults: loopback binding, no credentials in the repository, pinned dependencies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ecgops.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    re.compile(r"(?i)(api[_-]?key|secret|token)\s*[:=]\s*['\"][A-Za-z0-9/+]{20,}['\"]"),
    re.compile(r"ghp_[A-Za-z0-9]{36}"),  # GitHub token
]


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines() if line]


def test_servers_bind_to_loopback_by_default() -> None:
    cfg = load_config(root=ROOT, profile="full")
    assert cfg.serving.host == "127.0.0.1"
    for profile in ("smoke", "quick", "full"):
        assert load_config(root=ROOT, profile=profile).serving.host == "127.0.0.1"


def test_no_credentials_in_tracked_files() -> None:
    hits = []
    for path in _tracked_files():
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [
            f"{path.relative_to(ROOT)}: {p.pattern}" for p in SECRET_PATTERNS if p.search(text)
        ]
    assert not hits, hits


def test_every_locked_dependency_is_pinned() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines, "requirements.lock is empty"
    unpinned = [line for line in lines if "==" not in line]
    assert not unpinned, unpinned
