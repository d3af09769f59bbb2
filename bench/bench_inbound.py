"""A trigger into Airflow through the gateway (the caller's Keycloak token in -> the run queued), p50/p95, against the
same trigger on Airflow's API directly with a cached Airflow token; and the shares of the gateway and of the
exchange (Airflow's /auth/token for the caller's Keycloak token, which the gateway's plugin asks once per token).

    python bench/bench_inbound.py [--runs 40]

Starts its own sandbox (ports 30xxx, own SANDBOX_HOME) seeded from bench/inbound.yaml (the bundled spec, `ci`
allowed 6000 calls a minute), pauses sandbox_smoke_dev so the runs stay queued (the trigger is what is measured, not
the run), and triggers it `--runs` times each way, alternating; writes bench/results/inbound.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import requests
from benchlib import cli, own_sandbox, save

from sandbox.systems.airflow.client import JWT_BEARER, AirflowApi

SPEC = Path(__file__).parent / "inbound.yaml"
OUT = Path(__file__).parent / "results" / "inbound.json"
DAG = "sandbox_smoke_dev"


def _ms(fn) -> tuple[float, requests.Response]:
    t0 = time.perf_counter()
    r = fn()
    return (time.perf_counter() - t0) * 1000, r


def q(xs: list[float], p: int) -> float:
    return round(statistics.quantiles(xs, n=100)[p - 1], 1) if len(xs) > 1 else round(xs[0], 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    runs = ap.parse_args().runs
    gateway_ms, direct_ms, exchange_ms = [], [], []
    with own_sandbox("inbound") as env:
        cli(env, "up", "--spec", str(SPEC))
        status = {r["name"]: r for r in json.loads(cli(env, "status", "-o", "json", "--show-secrets")[1].stdout)}
        admin = AirflowApi.of_status(status["airflow"])
        admin.call("PATCH", f"/dags/{DAG}", json={"is_paused": True})  # runs stay queued: the trigger is measured
        keycloak, tyk, airflow = status["keycloak"]["url"], status["tyk"]["url"], status["airflow"]["url"]
        secret = json.loads((Path(env["SANDBOX_HOME"]) / "secrets" / "clients.json").read_text())["dev/ci"]
        kc = requests.post(f"{keycloak}/realms/dev/protocol/openid-connect/token",
                           data={"grant_type": "client_credentials", "client_id": "ci", "client_secret": secret,
                                 "scope": "openid"}, timeout=30).json()["access_token"]
        for _ in range(5):  # the exchange alone: what the gateway's plugin asks once per token
            ms, r = _ms(lambda: requests.post(f"{airflow}/auth/token", json={"grant_type": JWT_BEARER,
                                                                               "assertion": kc}, timeout=30))
            assert r.status_code == 201, r.text
            exchange_ms.append(ms)
        cached = r.json()["access_token"]
        body = {"logical_date": None}
        through = requests.Session()
        through.headers["Authorization"] = f"Bearer {kc}"
        direct = requests.Session()
        direct.headers["Authorization"] = f"Bearer {cached}"
        first, r = _ms(lambda: through.post(f"{tyk}/dev/airflow/api/v2/dags/{DAG}/dagRuns", json=body, timeout=30))
        assert r.status_code == 200, r.text  # the first: the plugin's exchange included
        for _ in range(runs):
            ms, r = _ms(lambda: through.post(f"{tyk}/dev/airflow/api/v2/dags/{DAG}/dagRuns", json=body, timeout=30))
            assert r.status_code == 200 and r.json()["triggering_user_name"] == "service-account-ci", r.text
            gateway_ms.append(ms)
            ms, r = _ms(lambda: direct.post(f"{airflow}/api/v2/dags/{DAG}/dagRuns", json=body, timeout=30))
            assert r.status_code == 200, r.text
            direct_ms.append(ms)
    p50_g, p50_d = statistics.median(gateway_ms), statistics.median(direct_ms)
    save(OUT, {"date": time.strftime("%Y-%m-%d"), "runs": runs,
               "through_gateway_ms": {"p50": round(p50_g, 1), "p95": q(gateway_ms, 95)},
               "direct_cached_token_ms": {"p50": round(p50_d, 1), "p95": q(direct_ms, 95)},
               "gateway_share_p50_ms": round(p50_g - p50_d, 1),
               "exchange_ms": {"p50": round(statistics.median(exchange_ms), 1), "max": round(max(exchange_ms), 1)},
               "first_call_through_gateway_ms": round(first, 1)})


if __name__ == "__main__":
    main()
