"""What every benchmark shares: its own ports (30xxx, so a running sandbox is left alone; not 30080, which a kind
cluster built by tools/kind_cluster.sh maps on the host) and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PORTS = ("ui=30090,keycloak=30081,keycloak-management=30091,redis=30379,tyk=30082,airflow=30180,upstream=30083,"
         "openbao=30200")


def cli(env: dict, *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run `sandbox ARGS` as a user would; (wall seconds, the finished process). A failure ends the benchmark."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "sandbox.cli", *args], env=env, capture_output=True, text=True)
    secs = time.monotonic() - t0
    if check and p.returncode != 0:
        raise SystemExit(f"sandbox {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return secs, p


@contextmanager
def own_sandbox(name: str) -> Iterator[dict]:
    """A sandbox of the benchmark's own (fresh home, the 30xxx ports): its environment; stopped and removed after."""
    home = tempfile.mkdtemp(prefix=f"sandbox-bench-{name}-")
    # the local runtime unless the caller's environment names one (bench_docker compares both)
    env = {"SANDBOX_RUNTIME": "local", **os.environ, "SANDBOX_HOME": home, "SANDBOX_PORTS": PORTS}
    try:
        yield env
    finally:
        cli(env, "down", "--volumes", check=False)
        shutil.rmtree(home, ignore_errors=True)


def up_fresh(runtime: str, measure: Callable[[dict], dict] | None = None) -> dict:
    """`sandbox up` (start, apply, smoke) on `runtime` in a fresh sandbox of the benchmark's own: the command's wall
    time, apply's, the smoke's and each component's time to healthy; plus what `measure(env)` reads of the running
    sandbox before it is taken down."""
    with own_sandbox(f"up-{runtime}") as env:
        env = {**env, "SANDBOX_RUNTIME": runtime}
        wall, p = cli(env, "up", "--runtime", runtime, *(["--images", "local"] if runtime == "docker" else []),
                      "-o", "json")
        out = json.loads(p.stdout)
        assert out["smoke"]["ok"], out["smoke"]
        return {"up_wall_s": round(wall, 1), "apply_s": round(out["apply"]["seconds"], 1),
                "smoke_s": round(out["smoke"]["seconds"], 1),
                "components_s": {c["name"]: round(c["seconds"], 1) for c in out["components"]},
                **(measure(env) if measure else {})}


def save(out: Path, result: dict) -> None:
    """Write the run's figures to bench/results/ and show them."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
