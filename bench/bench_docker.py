"""The docker runtime against the local one on the same machine, in one run; and the image build, cold and cached.

    python bench/bench_docker.py [--skip-cold] [--repeat 3]

1. `sandbox images build` cold: the sandbox's images, their Debian bases and Docker's build cache removed first
   (debootstrap, apt, pip, Maven all run); then again with nothing changed (cached).
2. `sandbox up` (start, apply, smoke) in a fresh home on each runtime, one after the other on the same ports,
   alternated `--repeat` times: the whole command (p50), and each component's time to healthy (p50);
3. after each round, a bare `airflow standalone` to healthy (bench/startup_once.py): the yardstick that says how fast
   the machine was, since its speed drifts by more than the targets' margins within a day.
Needs a Docker engine. Writes bench/results/docker.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench_startup import once
from benchlib import cli, save, up_fresh

from sandbox import versions
from sandbox.commands import images
from sandbox.host import engine

OUT = Path(__file__).parent / "results" / "docker.json"


def build(env: dict) -> tuple[float, dict[str, str]]:
    wall, p = cli(env, "images", "build", "-o", "json")
    return wall, {r["component"]: r["action"] for r in json.loads(p.stdout)}


def p50(runs: list[dict]) -> dict:
    med = lambda xs: round(statistics.median(xs), 1)  # noqa: E731
    return {"up_wall_s": med([r["up_wall_s"] for r in runs]), "apply_s": med([r["apply_s"] for r in runs]),
            "smoke_s": med([r["smoke_s"] for r in runs]),
            "components_s": {n: med([r["components_s"][n] for r in runs]) for n in runs[0]["components_s"]},
            "all_up_wall_s": [r["up_wall_s"] for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-cold", action="store_true", help="only the cached build")
    ap.add_argument("--repeat", type=int, default=1, help="`up` on each runtime, alternated, this many times")
    args = ap.parse_args()
    env = dict(os.environ)
    client = engine.client()
    result: dict = {"date": time.strftime("%Y-%m-%d"), "engine": client.version()["Version"]}
    if not args.skip_cold:
        images.remove(client, list(versions.IMAGES))
        for suite in (versions.DEBIAN, versions.DEBIAN_FOR_JAVA):
            client.images.remove(images.base_tag(suite), force=True)
        client.api.prune_builds()
        result["build_cold_s"], actions = build(env)
        assert set(actions.values()) == {"built"}, actions
    result["build_cached_s"], actions = build(env)
    assert set(actions.values()) == {"cached"}, actions
    runs: dict[str, list[dict]] = {"local": [], "docker": []}
    yardstick = []  # the machine's speed drifts within a day: a bare `airflow standalone` each round says how fast
    for _ in range(args.repeat):
        for rt in runs:
            runs[rt].append(up_fresh(rt))
        yardstick.append(once("standalone")["wall_s"])  # bench/startup_once.py, as bench_startup runs it
    result["up"] = {rt: p50(r) for rt, r in runs.items()}
    result["yardstick_airflow_standalone_s"] = statistics.median(yardstick)
    save(OUT, result)
    u = result["up"]
    print("\n| measure | local | docker |\n|---|---|---|")
    print(f"| `sandbox up` (start, apply, smoke), fresh home | {u['local']['up_wall_s']} s | "
          f"{u['docker']['up_wall_s']} s |")
    print(f"| yardstick: a bare `airflow standalone` to healthy, same rounds | "
          f"{result['yardstick_airflow_standalone_s']} s | |")
    loc, dock = u["local"]["components_s"], u["docker"]["components_s"]
    for name in loc:
        print(f"| {name} healthy after | {loc[name]} s | {dock[name]} s |")
    if "build_cold_s" in result:
        print(f"\n`sandbox images build`, all five: cold {result['build_cold_s']:.0f} s, "
              f"cached {result['build_cached_s']:.1f} s")


if __name__ == "__main__":
    main()
