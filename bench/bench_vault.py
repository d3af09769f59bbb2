"""The vault's cost: OpenBao's start to unsealed — first start of a sandbox (initialisation and bootstrap
included) and a restart (auto-unsealed, bootstrap only) — and the reads Airflow's processes make.

    python bench/bench_vault.py [--repeat 5]

Starts its own sandbox with OpenBao alone (ports 30xxx, own SANDBOX_HOME), `--repeat` times fresh and
`--repeat` times restarted; then times `--reads` reads of a secret with Airflow's token (its policy evaluated on
each). OpenBao's cold build is timed by provisioning into an empty cache: `python bench/bench_vault.py --build`
(SANDBOX_OPENBAO_SOURCE and SANDBOX_OPENBAO_WRAPPERS as CI sets them). Writes bench/results/vault.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import cli, own_sandbox, save

from sandbox.systems.openbao.client import Vault

OUT = Path(__file__).parent / "results" / "vault.json"
ONLY = [a for n in ("keycloak", "redis", "tyk", "airflow", "upstream") for a in ("--without", n)]


def up_seconds(env: dict) -> float:
    secs, p = cli(env, "up", "--no-apply", "-o", "json", *ONLY)
    rows = {c["name"]: c for c in json.loads(p.stdout)["components"]}
    assert rows["openbao"]["action"] in ("started", "restarted"), rows
    return secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--reads", type=int, default=500)
    ap.add_argument("--build", action="store_true", help="also time a cold build into an empty cache")
    args = ap.parse_args()
    result: dict = {}
    if args.build:
        with own_sandbox("vault-build") as env:
            env["SANDBOX_CACHE"] = tempfile.mkdtemp(prefix="sandbox-bench-cache-")
            secs, _ = cli(env, "provision", "openbao")
            result["cold_build_s"] = round(secs, 1)
    first, restart, reads = [], [], []
    for _ in range(args.repeat):
        with own_sandbox("vault") as env:
            first.append(up_seconds(env))
            cli(env, "down")
            restart.append(up_seconds(env))
            if not reads:
                row = {r["name"]: r for r in json.loads(cli(env, "status", "-o", "json", "--show-secrets")[1].stdout)}
                root = Vault(row["openbao"]["url"], row["openbao"]["secret"])
                root.kv_put("variables/bench", {"value": "x" * 32})
                token = (Path(env["SANDBOX_HOME"]) / "airflow-secrets" / "vault-token").read_text().strip()
                airflow = Vault(row["openbao"]["url"], token)
                for _ in range(args.reads):
                    t0 = time.perf_counter()
                    airflow.kv_get("variables/bench")
                    reads.append((time.perf_counter() - t0) * 1000)
    result.update({
        "first_up_s": {"p50": round(statistics.median(first), 2), "all": [round(x, 2) for x in first]},
        "restart_up_s": {"p50": round(statistics.median(restart), 2), "all": [round(x, 2) for x in restart]},
        "airflow_read_ms": {"p50": round(statistics.median(reads), 2),
                            "p95": round(sorted(reads)[int(len(reads) * 0.95)], 2), "n": len(reads)},
    })
    save(OUT, result)


if __name__ == "__main__":
    main()
