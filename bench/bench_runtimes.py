"""`sandbox up` on the three runtimes in one run: local processes, docker containers, a kind cluster.

    python bench/bench_runtimes.py [--repeat 1]

For each runtime in turn, a fresh home and the same bundled spec: `sandbox up` (start, apply, smoke) as a user runs
it — its wall time, each component's time to healthy, apply and smoke — then `down --volumes`. Rounds alternate the
runtimes (`--repeat`), p50 reported. The smoke's tasks are asked (Airflow's REST API) how long each waited between
queued and running: on the cluster that is its pod being made, scheduled and started (the KubernetesExecutor), on
the others a process forked by the scheduler — the pod's share of the smoke's time is that wait over the smoke.

Needs a Docker engine, the images (`sandbox images build`) and a cluster in the kubeconfig (`tools/kind_cluster.sh
up`, then `eval "$(tools/kind_cluster.sh env)"`; SANDBOX_TYK_CHARTS for the gateway's chart). Writes
bench/results/runtimes.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

from benchlib import cli, save, up_fresh

from sandbox.systems.airflow.client import AirflowApi

OUT = Path(__file__).parent / "results" / "runtimes.json"
RUNTIMES = ("local", "docker", "kubernetes")
SMOKE_DAGS = ("sandbox_smoke_dev", "sandbox_smoke_prod")


def _t(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def queued_to_running(env: dict) -> list[float]:
    """Seconds each task of the last smoke waited between queued and running."""
    _, p = cli(env, "status", "-o", "json", "--show-secrets")
    af = {r["name"]: r for r in json.loads(p.stdout)}["airflow"]
    api = AirflowApi.of_status(af)
    out = []
    for dag in SMOKE_DAGS:
        (run,) = api.s.get(f"{api.base}/dags/{dag}/dagRuns", params={"order_by": "-start_date", "limit": 1},
                           timeout=30).json()["dag_runs"]
        for ti in api.s.get(f"{api.base}/dags/{dag}/dagRuns/{run['dag_run_id']}/taskInstances",
                            timeout=30).json()["task_instances"]:
            if ti.get("queued_when") and ti.get("start_date"):
                out.append(_t(ti["start_date"]) - _t(ti["queued_when"]))
    return out


def task_wait(env: dict) -> dict:
    waits = queued_to_running(env)
    return {"task_wait_s": round(statistics.median(waits), 1) if waits else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {rt: [] for rt in RUNTIMES}
    for _ in range(args.repeat):
        for rt in RUNTIMES:
            runs[rt].append(up_fresh(rt, task_wait))
    med = lambda xs: round(statistics.median(xs), 1)  # noqa: E731
    result = {"date": time.strftime("%Y-%m-%d"), "repeat": args.repeat, "up": {
        rt: {"up_wall_s": med([r["up_wall_s"] for r in rs]), "apply_s": med([r["apply_s"] for r in rs]),
             "smoke_s": med([r["smoke_s"] for r in rs]), "task_wait_s": med([r["task_wait_s"] for r in rs]),
             "pod_share_of_smoke": round(med([r["task_wait_s"] for r in rs]) / med([r["smoke_s"] for r in rs]), 2),
             "components_s": {n: med([r["components_s"][n] for r in rs]) for n in rs[0]["components_s"]},
             "all_up_wall_s": [r["up_wall_s"] for r in rs]}
        for rt, rs in runs.items()}}
    save(OUT, result)
    u = result["up"]
    print("\n| measure | " + " | ".join(RUNTIMES) + " |\n|---|" + "---|" * len(RUNTIMES))
    for key, label in (("up_wall_s", "`sandbox up` (start, apply, smoke), fresh home"), ("apply_s", "apply"),
                       ("smoke_s", "smoke"), ("task_wait_s", "a smoke task, queued → running (p50)"),
                       ("pod_share_of_smoke", "that wait's share of the smoke")):
        print(f"| {label} | " + " | ".join(str(u[rt][key]) for rt in RUNTIMES) + " |")
    for name in u["local"]["components_s"]:
        print(f"| {name} healthy after | " + " | ".join(f"{u[rt]['components_s'][name]} s" for rt in RUNTIMES) + " |")


if __name__ == "__main__":
    main()
