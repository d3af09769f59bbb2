"""Benchmark of the local runtime (issue #2): solo starts, parallel `up`, warm `up`, `down`, total RSS.

Runs the real CLI against its own SANDBOX_HOME and ports (30xxx), so a running sandbox is left alone.
Every `up` is `--no-apply`: start to healthy only (seeding is timed by bench_apply.py).

    python bench/bench_stack.py [--repeat 3] [--fresh-cache]

--fresh-cache also times first-time provisioning into an empty cache (pip, Maven and Go keep their own
download caches, so this measures unpack/build/install more than the network).
Writes bench/results/stack.json and prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from benchlib import PORTS, cli, save

ALL = ["keycloak", "redis", "tyk", "openbao", "airflow", "upstream"]
DEPS = {"tyk": ["redis"], "airflow": ["openbao"]}
OUT = Path(__file__).parent / "results" / "stack.json"


def fresh_env(base: dict, cache: str | None = None) -> dict:
    env = {"SANDBOX_RUNTIME": "local", **base, "SANDBOX_HOME": tempfile.mkdtemp(prefix="sandbox-bench-"),
           "SANDBOX_PORTS": PORTS}
    env.pop("SANDBOX_WITHOUT", None)
    if cache:
        env["SANDBOX_CACHE"] = cache
    return env


def without(keep: list[str], available: list[str]) -> list[str]:
    return [a for n in ALL if n not in keep or n not in available for a in ("--without", n)]


def stack_rss(env: dict) -> int:
    _, p = cli(env, "status", "-o", "json")
    total, seen = 0, set()
    for row in json.loads(p.stdout):
        for pid in row["pids"]:
            proc = psutil.Process(pid)
            for q in [proc, *proc.children(recursive=True)]:
                if q.pid not in seen:
                    seen.add(q.pid)
                    total += q.memory_info().rss
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fresh-cache", action="store_true")
    args = ap.parse_args()
    base = dict(os.environ)
    result: dict = {"machine": {"cpus": os.cpu_count(), "mem_gib": round(psutil.virtual_memory().total / 2**30)},
                    "date": time.strftime("%Y-%m-%d")}

    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.fresh_cache:
        cache = tempfile.mkdtemp(prefix="sandbox-bench-cache-")
        # exit 1 when a component cannot be provisioned here (Tyk); the others are still timed
        secs, p = cli(fresh_env(base, cache), "provision", "-o", "json", check=False)
        result["fresh_provision_s"] = round(secs, 1)
        result["fresh_provision"] = {r["name"]: round(r["seconds"], 1) for r in json.loads(p.stdout)}
        shutil.rmtree(cache, ignore_errors=True)

    _, prov = cli(base, "provision", "-o", "json", check=False)
    available = [r["name"] for r in json.loads(prov.stdout) if r["ok"]]
    result["left_out"] = [n for n in ALL if n not in available]

    solo: dict[str, list[float]] = {n: [] for n in available}
    parallel, warm, down, rss = [], [], [], []
    for _ in range(args.repeat):
        for name in available:
            env = fresh_env(base)
            keep = [name, *DEPS.get(name, [])]
            # measured like the parallel run: the whole `sandbox up` command, start to healthy
            secs, _ = cli(env, "up", "--no-apply", "-o", "json", *without(keep, available))
            solo[name].append(secs)
            cli(env, "down")
            shutil.rmtree(env["SANDBOX_HOME"], ignore_errors=True)
        env = fresh_env(base)
        secs, _ = cli(env, "up", "--no-apply", "-o", "json", *without(available, available))
        parallel.append(secs)
        warm.append(cli(env, "up", "--no-apply", "-o", "json", *without(available, available))[0])
        rss.append(stack_rss(env))
        down.append(cli(env, "down")[0])
        shutil.rmtree(env["SANDBOX_HOME"], ignore_errors=True)

    med = statistics.median
    result.update({
        "repeat": args.repeat,
        "solo_start_s": {n: round(med(v), 1) for n, v in solo.items()},
        "parallel_up_s": round(med(parallel), 1),
        "warm_up_s": round(med(warm), 2),
        "down_s": round(med(down), 1),
        "total_rss_mib": round(med(rss) / 2**20),
    })
    slowest = max(result["solo_start_s"].values())
    result["parallel_vs_slowest_solo"] = round(result["parallel_up_s"] / slowest, 2)
    if not args.fresh_cache and "fresh_provision_s" in previous:  # keep the last fresh-cache figures
        result["fresh_provision_s"] = previous["fresh_provision_s"]
        result["fresh_provision"] = previous["fresh_provision"]
    save(OUT, result)
    print("\n| measure | median | target |\n|---|---|---|")
    for n, v in result["solo_start_s"].items():
        print(f"| solo start-to-healthy: {n} | {v} s | |")
    print(f"| parallel `sandbox up` (fresh sandbox) | {result['parallel_up_s']} s | ≤ 1.3 × slowest solo "
          f"({result['parallel_vs_slowest_solo']} ×) |")
    print(f"| warm `sandbox up` | {result['warm_up_s']} s | ≤ 3 s |")
    print(f"| `sandbox down` | {result['down_s']} s | ≤ 10 s |")
    print(f"| total RSS | {result['total_rss_mib']} MiB | ≤ 3072 MiB |")
    if "fresh_provision_s" in result:
        print(f"| first-time provisioning (empty cache) | {result['fresh_provision_s']} s | |")


if __name__ == "__main__":
    main()
