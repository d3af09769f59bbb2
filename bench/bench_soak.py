"""A soak through the gateway: N clients with real, refreshing tokens at a steady rate for minutes.

    python bench/bench_soak.py [--clients 8] [--rate 10] [--minutes 3] [--window 30]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME, bench/soak.yaml: tokens live 60 s) without Airflow,
then runs `--clients` threads, each with its own client-credentials helper (a token fetched, refreshed at 80 %
of its life) and keep-alive session, calling the route `--rate` times a second on a fixed schedule, loopback
only, bounded by `--minutes`. Reports requests, non-2xx (target 0), p50/p99 per window, token fetches, and each
component's RSS (its whole process tree) idle, after `--warmup` seconds of load and at the end (target: growth
after warm-up < 10 %). Writes
bench/results/soak.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import psutil
import requests
from benchlib import cli, own_sandbox, save

from sandbox.systems.airflow.token_helper import ClientCredentialsAuth

SPEC = Path(__file__).parent / "soak.yaml"
OUT = Path(__file__).parent / "results" / "soak.json"


def rss(status: list[dict]) -> dict[str, float]:
    """MiB per component, its recorded processes and their children."""
    out = {}
    for row in status:
        total = 0
        for pid in row["pids"]:
            try:
                p = psutil.Process(pid)
                total += sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
            except psutil.Error:
                pass
        if row["pids"]:
            out[row["name"]] = round(total / 2**20, 1)
    return out


def pct(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1], 2) if len(values) > 1 else (values or [0])[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rate", type=float, default=10.0, help="calls per second per client")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=30, help="seconds per reporting window")
    ap.add_argument("--warmup", type=int, default=30, help="seconds of load before the steady-state RSS is taken")
    args = ap.parse_args()
    with own_sandbox("soak") as env:
        samples: list[tuple[float, float, int]] = []  # (seconds since start, ms, status)
        lock = threading.Lock()
        cli(env, "up", "--spec", str(SPEC), "--without", "airflow", "--without", "openbao")
        status = json.loads(cli(env, "status", "-o", "json")[1].stdout)
        urls = {r["name"]: r["url"] for r in status}
        secret = json.loads(Path(env["SANDBOX_HOME"], "secrets", "clients.json").read_text())["dev/airflow"]
        token_url = f"{urls['keycloak']}/realms/dev/protocol/openid-connect/token"
        route = f"{urls['tyk']}/dev/orders/get"
        rss_start = rss(status)
        helpers = [ClientCredentialsAuth(token_url, "airflow", secret) for _ in range(args.clients)]
        t0 = time.monotonic()
        end = t0 + args.minutes * 60

        def client(auth: ClientCredentialsAuth) -> None:
            s = requests.Session()
            n = 0
            while (due := t0 + n / args.rate) < end:
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                t = time.monotonic()
                try:
                    code = s.get(route, auth=auth, timeout=10).status_code
                except requests.RequestException:
                    code = 0
                with lock:
                    samples.append((t - t0, (time.monotonic() - t) * 1000, code))
                n += 1

        threads = [threading.Thread(target=client, args=(h,)) for h in helpers]
        for t in threads:
            t.start()
        time.sleep(max(0.0, t0 + args.warmup - time.monotonic()))
        rss_warm = rss(status)  # pools and caches filled: growth from here on is what a leak would show
        for t in threads:
            t.join()
        rss_end = rss(json.loads(cli(env, "status", "-o", "json")[1].stdout))
    windows = []
    for w in range(int(args.minutes * 60 // args.window) + 1):
        ms = [m for (at, m, _) in samples if w * args.window <= at < (w + 1) * args.window]
        bad = sum(1 for (at, _, c) in samples if w * args.window <= at < (w + 1) * args.window and not 200 <= c < 300)
        if ms:
            windows.append({"from_s": w * args.window, "requests": len(ms), "non_2xx": bad,
                            "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99)})
    growth = {k: round((rss_end.get(k, 0) - v) / v * 100, 1) for k, v in rss_warm.items() if v}
    cold_growth = {k: round((rss_end.get(k, 0) - v) / v * 100, 1) for k, v in rss_start.items() if v}
    result = {"date": time.strftime("%Y-%m-%d"), "clients": args.clients, "rate_per_client": args.rate,
              "minutes": args.minutes, "requests": len(samples),
              "non_2xx": sum(1 for *_, c in samples if not 200 <= c < 300),
              "token_fetches": sum(h.fetches for h in helpers), "windows": windows,
              "rss_cold_mib": rss_start, "warmup_s": args.warmup, "rss_warm_mib": rss_warm, "rss_end_mib": rss_end,
              "rss_growth_pct": growth, "rss_growth_from_cold_pct": cold_growth}
    save(OUT, result)
    print("\n| window (s) | requests | non-2xx | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for w in windows:
        print(f"| {w['from_s']}–{w['from_s'] + args.window} | {w['requests']} | {w['non_2xx']} | {w['p50_ms']} | "
              f"{w['p99_ms']} |")
    print(f"\n| component | RSS idle MiB | after {args.warmup} s of load | at the end | growth after warm-up |"
          "\n|---|---|---|---|---|")
    for k, v in rss_start.items():
        print(f"| {k} | {v} | {rss_warm.get(k)} | {rss_end.get(k)} | {growth.get(k)} % |")


if __name__ == "__main__":
    main()
