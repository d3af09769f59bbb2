"""The gateway's own cost: authenticated calls through Tyk against the same calls straight to the upstream.

    python bench/bench_gateway.py [--calls 1000]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) seeded from bench/gateway.yaml, fetches one token,
then sends `--calls` requests each way, interleaved one by one on keep-alive sessions so both see the same
machine load. Loopback only, bounded in count. Writes bench/results/gateway.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import requests
from benchlib import cli, own_sandbox, save

SPEC = Path(__file__).parent / "gateway.yaml"
OUT = Path(__file__).parent / "results" / "gateway.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    with own_sandbox("gateway") as env:
        cli(env, "up", "--spec", str(SPEC), "--without", "airflow", "--without", "openbao")
        status = {r["name"]: r for r in json.loads(cli(env, "status", "-o", "json")[1].stdout)}
        token = cli(env, "token", "airflow", "--env", "dev", "--spec", str(SPEC))[1].stdout.strip()
        through = requests.Session()
        through.headers["Authorization"] = f"Bearer {token}"
        direct = requests.Session()
        urls = {"gateway": (through, status["tyk"]["url"] + "/dev/orders/bench"),
                "direct": (direct, status["upstream"]["url"] + "/anything/orders/bench")}
        for s, url in urls.values():  # warm up connections and the gateway's JWKS cache
            for _ in range(20):
                s.get(url, timeout=10).raise_for_status()
        times: dict[str, list[float]] = {k: [] for k in urls}
        for _ in range(args.calls):
            for name, (s, url) in urls.items():
                t0 = time.perf_counter()
                r = s.get(url, timeout=10)
                times[name].append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{name} call answered {r.status_code}: {r.text[:200]}")

    stats = {k: {"p50_ms": round(statistics.median(v), 2), "p99_ms": round(percentile(v, 0.99), 2)}
             for k, v in times.items()}
    added = round(stats["gateway"]["p50_ms"] - stats["direct"]["p50_ms"], 2)
    result = {"date": time.strftime("%Y-%m-%d"), "calls": args.calls, **stats, "added_p50_ms": added,
              "added_p99_ms": round(stats["gateway"]["p99_ms"] - stats["direct"]["p99_ms"], 2)}
    save(OUT, result)
    print("\n| measure | p50 | p99 | target |\n|---|---|---|---|")
    print(f"| {args.calls} calls straight to the upstream | {stats['direct']['p50_ms']} ms | "
          f"{stats['direct']['p99_ms']} ms | |")
    print(f"| the same calls through Tyk (JWT + policy) | {stats['gateway']['p50_ms']} ms | "
          f"{stats['gateway']['p99_ms']} ms | |")
    print(f"| added by the gateway | {added} ms | {result['added_p99_ms']} ms | ≤ 2 ms at p50 |")


if __name__ == "__main__":
    main()
