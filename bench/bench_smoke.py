"""`sandbox smoke` on a running stack with the default spec: start to verdict, and how much of it is Airflow.

    python bench/bench_smoke.py [--repeat 5]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with `sandbox up --no-smoke`, runs one smoke to warm it
(the first one also waits for Airflow to parse the freshly installed smoke DAGs), then times `--repeat` more:
the CLI's wall time, the report's start-to-verdict, and the calls themselves (the slowest task's four hops).
Writes bench/results/smoke.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "smoke.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with own_sandbox("smoke") as env:
        walls, verdicts, calls = [], [], []
        cli(env, "up", "--no-smoke")
        first_wall, p = cli(env, "smoke", "-o", "json")
        first = json.loads(p.stdout)
        for _ in range(args.repeat):
            wall, p = cli(env, "smoke", "-o", "json")
            report = json.loads(p.stdout)
            assert report["ok"], report
            walls.append(wall)
            verdicts.append(report["seconds"])
            calls.append(report["calls_seconds"])
    med = statistics.median
    result = {"date": time.strftime("%Y-%m-%d"), "repeat": args.repeat, "connections": len(first["rows"]),
              "first_smoke_wall_s": round(first_wall, 2), "first_smoke_s": first["seconds"],
              "smoke_wall_s": round(med(walls), 2), "smoke_s": round(med(verdicts), 2),
              "calls_s": round(med(calls), 3), "airflow_s": round(med(verdicts) - med(calls), 2)}
    save(OUT, result)
    print("\n| measure | median | target |\n|---|---|---|")
    print(f"| `sandbox smoke`, default spec ({result['connections']} connections), whole command | "
          f"{result['smoke_wall_s']} s | ≤ 15 s |")
    print(f"| of which start to verdict / the calls themselves / Airflow (trigger, schedule, start tasks) | "
          f"{result['smoke_s']} / {result['calls_s']} / {result['airflow_s']} s | |")
    print(f"| first smoke after `up` (waits for the smoke DAGs to be parsed) | {result['first_smoke_wall_s']} s | |")


if __name__ == "__main__":
    main()
