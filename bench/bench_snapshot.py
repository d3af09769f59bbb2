"""`sandbox snapshot` and `sandbox compare` on a running stack.

    python bench/bench_snapshot.py [--repeat 5]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with every component and the bundled spec, and times the
whole commands (Python's start included): `snapshot FILE` (every connection's facts from Airflow, the vault, Keycloak,
the gateway and Redis, and doctor's walk of each), `compare A B` of two files, and `compare A` against the machine
now (a snapshot taken on the way). Targets: snapshot ≤ 5 s, compare of two files ≤ 1 s. Writes
bench/results/snapshot.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "snapshot.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"snapshot": [], "compare_files": [], "compare_now": []}
    with own_sandbox("snapshot") as env, tempfile.TemporaryDirectory() as tmp:
        cli(env, "up")
        a, b = Path(tmp, "a.json"), Path(tmp, "b.json")
        cli(env, "snapshot", str(a))
        for _ in range(args.repeat):
            times["snapshot"].append(cli(env, "snapshot", str(b))[0])
            times["compare_files"].append(cli(env, "compare", str(a), str(b))[0])
            times["compare_now"].append(cli(env, "compare", str(a))[0])
    result = {"date": time.strftime("%Y-%m-%d"), "repeat": args.repeat,
              "target_s": {"snapshot": 5.0, "compare_files": 1.0},
              "seconds": {k: {"p50": round(statistics.median(t), 2), "max": round(max(t), 2)}
                          for k, t in times.items()}}
    save(OUT, result)


if __name__ == "__main__":
    main()
