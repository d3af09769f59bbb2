"""`sandbox repro --all` on a running stack: each scenario's time (target ≤ 30 s) and the catalogue's (≤ 5 min).

    python bench/bench_repro.py

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with `sandbox up`, runs the whole catalogue once through
the CLI, and writes bench/results/repro.json: per scenario its seconds and whether the symptom matched and green
came back; the slowest named. Prints a Markdown table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "repro.json"


def main() -> None:
    with own_sandbox("repro") as env:
        cli(env, "up")
        wall, p = cli(env, "repro", "--all", "-o", "json", check=False)
        runs = json.loads(p.stdout)
    rows = [{"scenario": r["scenario"], "seconds": r["seconds"], "ok": r["ok"]} for r in runs]
    slowest = max(rows, key=lambda r: r["seconds"])
    result = {"date": time.strftime("%Y-%m-%d"), "scenarios": len(rows), "catalogue_wall_s": round(wall, 1),
              "all_ok": all(r["ok"] for r in rows), "slowest": slowest["scenario"],
              "over_30s": [r["scenario"] for r in rows if r["seconds"] > 30], "runs": rows}
    save(OUT, result)
    print("\n| scenario | seconds | matched and green again |\n|---|---|---|")
    for r in rows:
        print(f"| `{r['scenario']}` | {r['seconds']} | {'✓' if r['ok'] else '✗'} |")
    print(f"| **catalogue** ({len(rows)}) | **{result['catalogue_wall_s']}** | |")


if __name__ == "__main__":
    main()
