#!/opt/venv/bin/python
"""Container health and readiness probe (standard library only, so the image needs no curl).

Usage:
    ecgops-healthcheck [URL ...]              probe once; exit 0 when every URL answers
    ecgops-healthcheck --wait SECONDS URL ... retry until every URL answers or time runs out

A URL is ``http(s)://...`` (healthy on a 2xx answer) or ``tcp://HOST:PORT`` (healthy when a TCP
connection opens). Without URLs it probes ``$ECGOPS_HEALTHCHECK_URL`` (space-separated) and
exits 0 when that is unset too: a CLI or worker container has no port of its own to probe.
The entrypoint uses ``--wait`` with ``$ECGOPS_WAIT_FOR`` so services start in order even where
the engine ignores ``depends_on: condition: service_healthy`` (podman < 4.6).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_S = float(os.environ.get("ECGOPS_HEALTHCHECK_TIMEOUT", "5"))
RETRY_EVERY_S = 2.0


def probe(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """Probe one endpoint.

    Args:
        url: ``http://``, ``https://`` or ``tcp://host:port`` address.
        timeout: seconds to wait for the connection or answer.

    Returns:
        None when healthy, else a one-line reason.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "tcp":
        if not parsed.hostname or not parsed.port:
            return f"{url}: expected tcp://HOST:PORT"
        try:
            with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
                return None
        except OSError as exc:
            return f"{url}: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"{url}: unsupported scheme {parsed.scheme!r}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (own services)
            status = resp.status
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    """Run the probe(s) and return the process exit code.

    Args:
        argv: command-line arguments after the program name.

    Returns:
        0 when every endpoint is healthy (or there is nothing to probe), else 1.
    """
    wait_s = 0.0
    if argv[:1] == ["--wait"]:
        if len(argv) < 2:
            print("usage: ecgops-healthcheck --wait SECONDS URL ...", file=sys.stderr)
            return 2
        wait_s = float(argv[1])
        argv = argv[2:]
    urls = argv or os.environ.get("ECGOPS_HEALTHCHECK_URL", "").split()
    deadline = time.monotonic() + wait_s
    pending = list(urls)
    while True:
        reasons = {url: probe(url) for url in pending}
        pending = [url for url, reason in reasons.items() if reason is not None]
        if not pending:
            return 0
        if time.monotonic() >= deadline:
            for url in pending:
                print(f"unhealthy: {reasons[url]}", file=sys.stderr)
            return 1
        time.sleep(RETRY_EVERY_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
