"""`sandbox repro --all` on a running stack: each scenario's time (target ≤ 30 s) and the catalogue's (≤ 5 min).

    python bench/bench_repro.py

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with `sandbox up`, runs the whole catalogue once through
the CLI, and writes bench/results/repro.json: per scenario its seconds and whether the symptom matched and green
came back; the slowest named. Prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import PORTS, cli

OUT = Path(__file__).parent / "results" / "repro.json"


def main() -> None:
    home = tempfile.mkdtemp(prefix="sandbox-bench-repro-")
    env = {**os.environ, "SANDBOX_HOME": home, "SANDBOX_PORTS": PORTS}
    try:
        cli(env, "up")
        wall, p = cli(env, "repro", "--all", "-o", "json", check=False)
        runs = json.loads(p.stdout)
    finally:
        subprocess.run([sys.executable, "-m", "sandbox.cli", "down"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    rows = [{"scenario": r["scenario"], "seconds": r["seconds"], "ok": r["ok"]} for r in runs]
    slowest = max(rows, key=lambda r: r["seconds"])
    result = {"date": time.strftime("%Y-%m-%d"), "scenarios": len(rows), "catalogue_wall_s": round(wall, 1),
              "all_ok": all(r["ok"] for r in rows), "slowest": slowest["scenario"],
              "over_30s": [r["scenario"] for r in rows if r["seconds"] > 30], "runs": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("\n| scenario | seconds | matched and green again |\n|---|---|---|")
    for r in rows:
        print(f"| `{r['scenario']}` | {r['seconds']} | {'✓' if r['ok'] else '✗'} |")
    print(f"| **catalogue** ({len(rows)}) | **{result['catalogue_wall_s']}** | |")


if __name__ == "__main__":
    main()
