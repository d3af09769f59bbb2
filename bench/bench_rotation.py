"""A full rotation drill: every account's client secret and every realm's signing key, rotated with overlap.

    python bench/bench_rotation.py [--repeat 3]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) with Keycloak, Tyk, Redis, the upstream and the vault
(no Airflow: the drill's cost is Keycloak's, the vault's and the gateway's) on bench/rotation.yaml — the fixture
spec's accounts and realms, with 60 s tokens so that the signing key's wait (the longest token lifespan + 10 s)
is short. Times `sandbox rotate` (every secret) and `sandbox rotate --signing-key` (every realm), and reports
each with its fixed waits (the secrets' 15 s grace; the keys' lifespan wait) taken out: the work itself.
Writes bench/results/rotation.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchlib import cli, own_sandbox, save

SPEC = Path(__file__).parent / "rotation.yaml"
OUT = Path(__file__).parent / "results" / "rotation.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    secrets, keys, secret_work, key_work, counts = [], [], [], [], {}
    with own_sandbox("rotation") as env:
        env["SANDBOX_SPEC"] = str(SPEC)
        cli(env, "up", "--no-smoke", "--without", "airflow")
        for _ in range(args.repeat):
            secs, p = cli(env, "rotate", "-o", "json")
            done = json.loads(p.stdout)
            secrets.append(secs)
            secret_work.append(secs - done[0]["grace_s"])
            counts["client_secrets"] = len(done)
            secs, p = cli(env, "rotate", "--signing-key", "-o", "json")
            done = json.loads(p.stdout)
            keys.append(secs)
            key_work.append(secs - done[0]["grace_s"])
            counts["realms"] = len(done)
    med = lambda xs: round(statistics.median(xs), 1)  # noqa: E731
    result = {**counts, "repeat": args.repeat,
              "secrets_s": {"p50": med(secrets), "work_p50": med(secret_work), "all": [round(x, 1) for x in secrets]},
              "signing_keys_s": {"p50": med(keys), "work_p50": med(key_work), "all": [round(x, 1) for x in keys]},
              "drill_s": med([a + b for a, b in zip(secrets, keys, strict=True)])}
    save(OUT, result)


if __name__ == "__main__":
    main()
