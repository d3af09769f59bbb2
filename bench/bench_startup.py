"""Issue 25's yardstick: `sandbox up --no-apply` (every component, a fresh home) against a bare `airflow
standalone` (the same Airflow install, a fresh AIRFLOW_HOME), alternated, each from its command to healthy, with
the CPU-seconds each component had spent by then.

    python bench/bench_startup.py [--pairs 4]

Each start is `bench/startup_once.py` in a process of its own (A B A B …, so a drift of the machine's speed hits
both); the ratio is taken pair by pair. Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchlib import save

OUT = Path(__file__).parent / "results" / "startup.json"
ONCE = Path(__file__).parent / "startup_once.py"


def once(what: str) -> dict:
    p = subprocess.run([sys.executable, str(ONCE), what], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4)
    args = ap.parse_args()
    once("sandbox"), once("standalone")  # warm-up: page caches, the first import of each
    pairs = [(once("sandbox"), once("standalone")) for _ in range(args.pairs)]
    med = lambda xs: round(statistics.median(xs), 2)  # noqa: E731
    components = sorted({c for a, _ in pairs for c in a["cpu_s"]})
    save(OUT, {
        "pairs": args.pairs,
        "sandbox_up_no_apply_wall_s": med([a["wall_s"] for a, _ in pairs]),
        "airflow_standalone_wall_s": med([b["wall_s"] for _, b in pairs]),
        "ratio_wall_p50": med([a["wall_s"] / b["wall_s"] for a, b in pairs]),
        "target_ratio": 0.8,
        "sandbox_cpu_s": {c: med([a["cpu_s"].get(c, 0.0) for a, _ in pairs]) for c in components},
        "sandbox_cli_and_launcher_cpu_s": med([a.get("cli_and_launcher_cpu_s", 0.0) for a, _ in pairs]),
        "sandbox_cpu_total_s": med([a["cpu_total_s"] for a, _ in pairs]),
        "airflow_standalone_cpu_s": med([b["cpu_total_s"] for _, b in pairs]),
        "all": [{"sandbox": a["wall_s"], "standalone": b["wall_s"]} for a, b in pairs],
    })


if __name__ == "__main__":
    main()
