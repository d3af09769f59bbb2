"""Building the Tyk gateway from its pinned source: cold (empty Go caches) and with Go's caches warm.

    SANDBOX_TYK_SOURCE=../shared/third_party/tyk/tyk-5.14.0.tar.gz python bench/bench_tyk_build.py [--skip-cold]

Each run provisions Tyk with `sandbox provision tyk` into an empty sandbox cache. "cold" also points GOCACHE
and GOMODCACHE at empty folders, as on a fresh machine (dependencies then come from the Go module proxy);
"warm" uses this user's Go caches, as a second sandbox cache or a rebuilt one would. A cold build takes
about 13 minutes on two cores. Writes bench/results/tyk_build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import save

from sandbox import versions

OUT = Path(__file__).parent / "results" / "tyk_build.json"


def provision(env: dict) -> float:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "sandbox.cli", "provision", "tyk"], env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise SystemExit(f"provisioning failed:\n{p.stderr}")
    return round(time.monotonic() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-cold", action="store_true", help="keep the last cold figure, time only the warm build")
    args = ap.parse_args()
    if not os.environ.get("SANDBOX_TYK_SOURCE"):
        raise SystemExit("set SANDBOX_TYK_SOURCE to the Tyk source tarball (see the README)")
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    runs = ["warm"] if args.skip_cold else ["cold", "warm"]
    for kind in runs:
        scratch = Path(tempfile.mkdtemp(prefix=f"sandbox-bench-tyk-{kind}-"))
        env = {**os.environ, "SANDBOX_CACHE": str(scratch / "cache")}
        env.pop("SANDBOX_TYK_HOME", None)
        if kind == "cold":
            env.update(GOCACHE=str(scratch / "gocache"), GOMODCACHE=str(scratch / "gomodcache"))
        result[f"{kind}_build_s"] = provision(env)
        binary = scratch / "cache" / "tyk" / versions.TYK / "tyk"
        result["binary_mib"] = round(binary.stat().st_size / 2**20)
        subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)  # the module cache is read-only
        shutil.rmtree(scratch, ignore_errors=True)
    result["date"] = time.strftime("%Y-%m-%d")
    save(OUT, result)
    print("\n| measure | result |\n|---|---|")
    if "cold_build_s" in result:
        print(f"| Tyk built from source, cold (empty Go caches) | {result['cold_build_s'] / 60:.1f} min |")
    print(f"| Tyk built from source, Go caches warm | {result['warm_build_s']} s |")
    print(f"| gateway binary | {result['binary_mib']} MiB |")


if __name__ == "__main__":
    main()
