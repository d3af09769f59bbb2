"""What every benchmark shares: its own ports (30xxx, so a running sandbox is left alone) and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time

PORTS = "keycloak=30081,keycloak-management=30091,redis=30379,tyk=30082,airflow=30080,upstream=30083"


def cli(env: dict, *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run `sandbox ARGS` as a user would; (wall seconds, the finished process). A failure ends the benchmark."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "sandbox.cli", *args], env=env, capture_output=True, text=True)
    secs = time.monotonic() - t0
    if check and p.returncode != 0:
        raise SystemExit(f"sandbox {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return secs, p
