"""`sandbox repro --all` on a running stack: each scenario's time (target ≤ 30 s) and the catalogue's (≤ 5 min),
and the catalogue's determinism: every run shows the same symptoms.

    python bench/bench_repro.py [--runtime local|docker|kubernetes] [--runs 3] [--only SCENARIO ...]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with `sandbox up` on the runtime asked for (local by
default), runs the catalogue that runtime can reproduce `--runs` times through the CLI (the test suite runs each
scenario once; the re-runs live here, not in every CI run), and writes
bench/results/repro.json (repro-<runtime>.json for the others): per scenario its seconds and whether the symptom
matched and green came back; the slowest named. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "repro.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", choices=("local", "docker", "kubernetes"), default="local")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", action="append", default=[], metavar="SCENARIO",
                    help="these scenarios instead of the whole catalogue (repeatable)")
    args = ap.parse_args()
    runtime = args.runtime
    out = OUT if runtime == "local" else OUT.with_name(f"repro-{runtime}.json")
    if args.only:
        out = out.with_name(out.stem + "-" + "-".join(args.only) + ".json")
    symptoms = []
    with own_sandbox(f"repro-{runtime}") as env:
        env["SANDBOX_RUNTIME"] = runtime
        cli(env, "up")
        for _ in range(args.runs):
            if args.only:
                done = [cli(env, "repro", name, "-o", "json", check=False) for name in args.only]
                wall, runs = sum(w for w, _ in done), [json.loads(p.stdout)[0] for _, p in done]
            else:
                wall, p = cli(env, "repro", "--all", "-o", "json", check=False)
                runs = json.loads(p.stdout)
            symptoms.append([(r["scenario"], r["observed"]["hop"], r["observed"]["status"], r["observed"]["words"])
                             for r in runs])
    rows = [{"scenario": r["scenario"], "seconds": r["seconds"], "ok": r["ok"]} for r in runs]
    slowest = max(rows, key=lambda r: r["seconds"])
    result = {"date": time.strftime("%Y-%m-%d"), "runtime": runtime, "scenarios": len(rows),
              "catalogue_wall_s": round(wall, 1),
              "all_ok": all(r["ok"] for r in rows), "slowest": slowest["scenario"],
              "runs_compared": args.runs, "identical_symptoms": all(s == symptoms[0] for s in symptoms),
              "over_30s": [r["scenario"] for r in rows if r["seconds"] > 30], "runs": rows}
    save(out, result)
    print("\n| scenario | seconds | matched and green again |\n|---|---|---|")
    for r in rows:
        print(f"| `{r['scenario']}` | {r['seconds']} | {'✓' if r['ok'] else '✗'} |")
    print(f"| **catalogue** ({len(rows)}) | **{result['catalogue_wall_s']}** | |")


if __name__ == "__main__":
    main()
