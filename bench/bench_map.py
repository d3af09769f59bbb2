"""`sandbox map` in every format, on a running stack with a smoke and its audit records behind it.

    python bench/bench_map.py [--repeat 5]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with every component and the bundled spec, and times
`sandbox map -o md|json|csv|svg` (the whole command: Python's start, the spec, the live comparison with Keycloak,
Tyk and Airflow, every secret's age, the audit records). Target: ≤ 2 s each. Writes bench/results/map.json.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "map.json"
FORMATS = ("md", "json", "csv", "svg")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {f: [] for f in FORMATS}
    with own_sandbox("map") as env:
        cli(env, "up")  # with the smoke: the map has verdicts and audit records to read
        for _ in range(args.repeat):
            for fmt in FORMATS:
                secs, _ = cli(env, "map", "-o", fmt)
                times[fmt].append(secs)
    result = {"repeat": args.repeat, "target_s": 2.0,
              "map_s": {f: {"p50": round(statistics.median(t), 2), "max": round(max(t), 2)} for f, t in times.items()}}
    save(OUT, result)


if __name__ == "__main__":
    main()
