"""Benchmarks of seeding (issue #3) and of a test session attaching to a running sandbox (issue #4).

    python bench/bench_apply.py [--repeat 5]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) without seeding, then times: the first apply of the
default spec on the fresh stack, a no-change apply, and a second pytest session attaching to the running
sandbox (the `sandbox` fixture's setup). Writes bench/results/apply.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

OUT = Path(__file__).parent / "results" / "apply.json"
ATTACH_TEST = """
import json, os
def test_attach(sandbox):
    with open(os.environ["ATTACH_OUT"], "w") as f:
        json.dump({"attached": sandbox.attached, "seconds": sandbox.setup_seconds}, f)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with own_sandbox("apply") as env:
        home = env["SANDBOX_HOME"]
        _, prov = cli(env, "provision", "-o", "json", check=False)
        without = [a for r in json.loads(prov.stdout) if not r["ok"] for a in ("--without", r["name"])]
        cli(env, "up", "--no-apply", *without)
        _, p = cli(env, "apply", "-o", "json")
        fresh = json.loads(p.stdout)
        noop = []
        for _ in range(args.repeat):
            _, p = cli(env, "apply", "-o", "json")
            report = json.loads(p.stdout)
            assert report["changes"] == [], report["changes"]
            noop.append(report["seconds"])
        noop_wall = statistics.median(cli(env, "apply", "-o", "json")[0] for _ in range(args.repeat))

        work = Path(tempfile.mkdtemp(prefix="sandbox-bench-attach-"))
        (work / "test_attach.py").write_text(ATTACH_TEST)
        attach, attach_wall = [], []
        for i in range(args.repeat):
            out = work / f"out{i}.json"
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--sandbox-home={home}",
                            *[f"--sandbox-without={w}" for w in without[1::2]], str(work)],
                           env={**env, "ATTACH_OUT": str(out)}, cwd=work, capture_output=True, check=True)
            attach_wall.append(time.monotonic() - t0)
            rec = json.loads(out.read_text())
            assert rec["attached"], rec
            attach.append(rec["seconds"])
        shutil.rmtree(work, ignore_errors=True)

    objects = sum(fresh["counts"].values())
    result = {
        "date": time.strftime("%Y-%m-%d"), "repeat": args.repeat, "plan_objects": fresh["counts"],
        "plan_objects_total": objects, "applied_changes": len(fresh["changes"]),
        "skipped": fresh["skipped"],
        "fresh_apply_s": round(fresh["seconds"], 2),
        "noop_apply_s": round(statistics.median(noop), 2),
        "noop_apply_cli_wall_s": round(noop_wall, 2),
        "attach_fixture_setup_s": round(statistics.median(attach), 2),
        "attach_pytest_wall_s": round(statistics.median(attach_wall), 2),
    }
    save(OUT, result)
    print("\n| measure | median | target |\n|---|---|---|")
    print(f"| fresh apply of the default spec ({objects} objects in the plan, {len(fresh['changes'])} changes) | "
          f"{result['fresh_apply_s']} s | ≤ 10 s |")
    print(f"| no-change apply (`sandbox apply` wall: {result['noop_apply_cli_wall_s']} s) | "
          f"{result['noop_apply_s']} s | ≤ 2 s |")
    print(f"| second test session attaching (fixture setup; whole pytest run: {result['attach_pytest_wall_s']} s) "
          f"| {result['attach_fixture_setup_s']} s | ≤ 2 s |")


if __name__ == "__main__":
    main()
