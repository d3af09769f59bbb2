"""One cold start, timed from outside: `sandbox up --no-apply` (every component, a fresh home) or a bare
`airflow standalone` (the sandbox's own Airflow install, a fresh AIRFLOW_HOME), from the command to healthy, then
stopped. Prints one JSON line: wall seconds to healthy and, for the sandbox, each component's CPU-seconds by then
(and the CLI's own, with the processes it waited for: Airflow's launcher).

    python bench/startup_once.py sandbox|standalone

Meant to be run in turn, A against B, by a pair-timing harness (the README gives the figures); bench_startup.py
runs both and writes bench/results/startup.json.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import PORTS, cli  # noqa: E402

from sandbox import versions  # noqa: E402
from sandbox.paths import SandboxPaths  # noqa: E402
from sandbox.systems.airflow.component import Airflow, health_complaint  # noqa: E402

STANDALONE_PORT = 30580


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            for q in [p, *p.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return round(total, 2)


def sandbox() -> dict:
    home = tempfile.mkdtemp(prefix="sandbox-startup-")
    env = {"SANDBOX_RUNTIME": "local", **os.environ, "SANDBOX_HOME": home, "SANDBOX_PORTS": PORTS}
    env.pop("SANDBOX_WITHOUT", None)
    try:
        before = _children_cpu()
        secs, _ = cli(env, "up", "--no-apply")
        # the CLI itself, and what it waited for: Airflow's launcher (imports Airflow once, forks the services, exits)
        waited = round(_children_cpu() - before, 2)
        _, p = cli(env, "status", "-o", "json")
        cpu = {r["name"]: cpu_of(r["pids"]) for r in json.loads(p.stdout) if r["pids"]}
        return {"what": "sandbox up --no-apply", "wall_s": round(secs, 2), "cpu_s": cpu,
                "cli_and_launcher_cpu_s": waited,
                "cpu_total_s": round(sum(cpu.values()) + waited, 2)}
    finally:
        cli(env, "down", check=False)
        shutil.rmtree(home, ignore_errors=True)


def standalone() -> dict:
    venv = Airflow().venv(SandboxPaths.resolve().cache)
    home = tempfile.mkdtemp(prefix="airflow-standalone-")
    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": home, "AIRFLOW_HOME": home,
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__API__PORT": str(STANDALONE_PORT),
           "AIRFLOW__API__HOST": "127.0.0.1", "LANG": "C.UTF-8"}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(venv / "bin" / "airflow"), "standalone"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{STANDALONE_PORT}/api/v2/monitor/health", timeout=2)
                if r.ok and health_complaint(r.json()) is None:
                    break
            except (requests.RequestException, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 300:
                raise SystemExit("airflow standalone did not become healthy")
            time.sleep(0.1)
        secs = time.monotonic() - t0
        return {"what": f"airflow standalone (Airflow {versions.AIRFLOW})", "wall_s": round(secs, 2),
                "cpu_total_s": cpu_of([proc.pid])}
    finally:
        # every process of it gone before the next start is timed: its services take seconds to stop after the
        # parent, and their CPU would count against whatever runs next (measured: +1.7 s on the sandbox's start)
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=20)
        for p in alive:
            p.kill()
        psutil.wait_procs(alive, timeout=10)
        proc.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps({"sandbox": sandbox, "standalone": standalone}[sys.argv[1]]()))
