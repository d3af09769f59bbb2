"""Per-task cost of resolving a managed connection in Airflow: with a fresh token, and with the process's cached
one (target ≤ 5 ms p50); the unmanaged lookup beside it (env var, then the Execution API) for reference.

    python bench/bench_connection.py [--runs 5]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with `sandbox up`, puts fixtures/dags/connection_timing.py
into its DAG folder and runs it `--runs` times (each run: one task, 50 lookups of `BaseHook.get_connection`);
writes bench/results/connection.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

from sandbox.spec import fixture_path
from sandbox.systems.airflow.client import AirflowApi
from sandbox.systems.airflow.dag_runs import run_dag

OUT = Path(__file__).parent / "results" / "connection.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    fresh, cached, plain = [], [], []
    with own_sandbox("connection") as env:
        cli(env, "up", "--no-smoke")
        shutil.copy(fixture_path("dags/connection_timing.py"), Path(env["SANDBOX_HOME"]) / "dags")
        af = {r["name"]: r for r in json.loads(cli(env, "status", "-o", "json", "--show-secrets")[1].stdout)}["airflow"]
        api = AirflowApi.of_status(af)
        api.call("POST", "/connections", json={"connection_id": "bench_plain_http", "conn_type": "http",
                                               "host": "http://127.0.0.1:9"})
        for _ in range(runs):
            run = run_dag(api, "connection_timing", {}, timeout=300)
            assert run["state"] == "success", run
            base = f"{api.base}/dags/connection_timing/dagRuns/{run['dag_run_id']}/taskInstances/resolve"
            value = api.s.get(f"{base}/xcomEntries/return_value", params={"deserialize": "true"},
                              timeout=30).json()["value"]
            value = json.loads(value) if isinstance(value, str) else value
            fresh.append(value["fresh_ms"])
            cached += value["cached_ms"]
            plain += value["plain_ms"]

    def q(xs: list[float], p: float) -> float:
        return round(statistics.quantiles(xs, n=100)[int(p) - 1], 2) if len(xs) > 1 else round(xs[0], 2)

    result = {"date": time.strftime("%Y-%m-%d"), "runs": runs,
              "fresh_token_ms": {"p50": round(statistics.median(fresh), 1), "max": round(max(fresh), 1)},
              "cached_ms": {"p50": round(statistics.median(cached), 2), "p95": q(cached, 95),
                            "lookups": len(cached)},
              "unmanaged_ms": {"p50": round(statistics.median(plain), 2), "p95": q(plain, 95)},
              "cached_p50_target_ms": 5, "met": statistics.median(cached) <= 5}
    save(OUT, result)


if __name__ == "__main__":
    main()
