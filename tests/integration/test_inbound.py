"""Into Airflow through the gateway (issue 43's acceptance), on the session's stack with the bundled spec, where the
account `ci` is granted Airflow's API for `sandbox_smoke_dev` at 30/min: its own Keycloak token, sent to the gateway
alone, triggers that DAG (Airflow records `ci` as the run's triggering user) and reads its runs; another DAG and the
DAG list are refused by the gateway; the same token on Airflow directly is refused; no token is refused; past the
rate, 429. `partner-hook`, granted the asset `s3://orders/daily`, posts an event of it by its URI and the DAG scheduled
on it runs. Written as a CI job or a webhook would call it: HTTP requests, no sandbox code."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from sandbox.spec import load
from sandbox.systems.airflow import dag_runs
from tests.integration.conftest import TEST_PORTS

pytestmark = pytest.mark.integration
GATEWAY = f"http://127.0.0.1:{TEST_PORTS['tyk']}/dev/airflow"
DAG, OTHER = "sandbox_smoke_dev", "sandbox_smoke_prod"


def _ci_token(stack, client: str = "ci") -> str:
    secret = json.loads((stack.home / "secrets" / "clients.json").read_text())[f"dev/{client}"]
    r = requests.post(f"http://127.0.0.1:{TEST_PORTS['keycloak']}/realms/dev/protocol/openid-connect/token",
                      data={"grant_type": "client_credentials", "client_id": client, "client_secret": secret,
                            "scope": "openid"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_ci_triggers_its_dag_through_the_gateway_as_itself_and_the_run_succeeds(stack, sandbox):
    h = {"Authorization": f"Bearer {_ci_token(stack)}"}
    run = requests.post(f"{GATEWAY}/api/v2/dags/{DAG}/dagRuns", headers=h, json={"logical_date": None}, timeout=30)
    assert run.status_code == 200, run.text
    assert run.json()["triggering_user_name"] == "service-account-ci"
    read = requests.get(f"{GATEWAY}/api/v2/dags/{DAG}/dagRuns/{run.json()['dag_run_id']}", headers=h, timeout=30)
    assert read.status_code == 200 and read.json()["dag_id"] == DAG
    # followed as the sandbox (its reads would spend ci's rate)
    assert dag_runs.wait(sandbox.clients.airflow, DAG, run.json()["dag_run_id"], time.monotonic() + 300, 300) == \
        "success"


def test_the_gateway_refuses_what_the_grant_does_not_name(stack):
    h = {"Authorization": f"Bearer {_ci_token(stack)}"}
    for method, path in (("POST", f"/api/v2/dags/{OTHER}/dagRuns"), ("GET", "/api/v2/dags")):
        r = requests.request(method, GATEWAY + path, headers=h, json={"logical_date": None}, timeout=30)
        assert r.status_code == 403 and "Access to this resource has been disallowed" in r.text, (path, r.text)
    r = requests.post(f"{GATEWAY}/api/v2/dags/{DAG}/dagRuns", json={"logical_date": None}, timeout=30)
    assert r.status_code == 401 and "Authorization field missing" in r.text, r.text  # Tyk's words for no token


def test_airflow_refuses_the_keycloak_token_without_the_gateway(stack):
    airflow = stack.status()["airflow"]["url"]
    r = requests.post(f"{airflow}/api/v2/dags/{DAG}/dagRuns", headers={"Authorization": f"Bearer {_ci_token(stack)}"},
                      json={"logical_date": None}, timeout=30)
    assert r.status_code == 403, r.text  # Airflow takes its own tokens only


def test_sandbox_call_triggers_the_granted_dag_as_the_account(stack):
    out = json.loads(stack.cli("call", "ci", "airflow", "api/v2/dags/sandbox_smoke_dev/dagRuns", "-X", "POST",
                               "-d", '{"logical_date": null}', "-o", "json").stdout)
    assert out["status"] == 200 and out["body"]["triggering_user_name"] == "service-account-ci", out
    refused = stack.cli("call", "ci", "airflow", "api/v2/dags", "-o", "json", check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)["status"] == 403, refused.stdout


def test_audit_inbound_names_the_caller_of_each_run_and_airflow_agrees(stack):
    h = {"Authorization": f"Bearer {_ci_token(stack)}"}
    run = requests.post(f"{GATEWAY}/api/v2/dags/{DAG}/dagRuns", headers=h, json={"logical_date": None}, timeout=30)
    assert run.status_code == 200, run.text
    other = requests.post(f"{GATEWAY}/api/v2/dags/{OTHER}/dagRuns", headers=h, json={"logical_date": None}, timeout=30)
    assert other.status_code == 403, other.text
    rows = json.loads(stack.cli("audit", "--inbound", "--since", "10m", "-o", "json").stdout)
    mine = [r for r in rows if r["run_id"] == run.json()["dag_run_id"]]
    assert mine and mine[0]["account"] == "ci" and mine[0]["verified"] and mine[0]["action"] == f"trigger {DAG}", rows
    assert any(r["action"] == "refused" and r["status"] == 403 and OTHER in r["path"] for r in rows), rows


def test_doctor_walks_a_callers_way_into_airflow_names_its_refused_call_then_green_and_a_missing_grant(stack):
    h = {"Authorization": f"Bearer {_ci_token(stack)}"}
    other = requests.post(f"{GATEWAY}/api/v2/dags/{OTHER}/dagRuns", headers=h, json={"logical_date": None}, timeout=30)
    assert other.status_code == 403, other.text
    p = stack.cli("doctor", "--caller", "ci", "-o", "json", check=False)
    out = json.loads(p.stdout)[0]
    walk = [("grant", True), ("token", True), ("gateway", True), ("exchange", True), ("airflow", True)]
    assert p.returncode == 1 and [(h["name"], h["ok"]) for h in out["hops"]] == [*walk, ("calls", False)], out
    assert f"POST /api/v2/dags/{OTHER}/dagRuns (HTTP 403), which its grant does not name" in out["verdict"]
    # doctor's own walk was let through since: the refusal is history
    out = json.loads(stack.cli("doctor", "--caller", "ci", "-o", "json").stdout)[0]
    assert [(h["name"], h["ok"]) for h in out["hops"]] == [*walk, ("calls", True)], out
    refused = stack.cli("doctor", "--caller", "reporting", "-o", "json", check=False)
    assert refused.returncode == 1 and "not granted Airflow's API" in json.loads(refused.stdout)[0]["verdict"]


def test_partner_hook_posts_an_asset_event_by_its_uri_and_the_dag_scheduled_on_it_runs(stack, sandbox):
    dag = Path(__file__).parents[2] / "fixtures" / "dags" / "orders_landed.py"
    (stack.home / "dags" / dag.name).write_text(dag.read_text())
    api, deadline = sandbox.clients.airflow, time.monotonic() + 120
    while api.call("GET", "/dags/orders_landed", ok404=True).status_code == 404:  # parsed: its asset is known
        assert time.monotonic() < deadline, "the DAG was not parsed"
        time.sleep(1)
    h = {"Authorization": f"Bearer {_ci_token(stack, 'partner-hook')}"}
    r = requests.post(f"{GATEWAY}/api/v2/assets/events", headers=h, timeout=30,
                      json={"asset_uri": "s3://orders/daily", "extra": {"file": "orders-2026-12-07.csv"}})
    assert r.status_code == 200 and r.json()["uri"] == "s3://orders/daily", r.text
    while not (runs := api.call("GET", "/dags/orders_landed/dagRuns").json()["dag_runs"]):
        assert time.monotonic() < deadline + 60, "no run of the DAG scheduled on the asset"
        time.sleep(1)
    assert runs[0]["run_type"] == "asset_triggered", runs
    assert dag_runs.wait(api, "orders_landed", runs[0]["dag_run_id"], time.monotonic() + 300, 300) == "success"
    # another asset is refused in the gateway's words, by URI or by id; ci may post no event at all
    other = requests.post(f"{GATEWAY}/api/v2/assets/events", headers=h, json={"asset_uri": "s3://orders/weekly"},
                          timeout=30)
    assert other.status_code == 403 and "may post events of s3://orders/daily, not s3://orders/weekly" in other.text
    ci = requests.post(f"{GATEWAY}/api/v2/assets/events", json={"asset_uri": "s3://orders/daily"}, timeout=30,
                       headers={"Authorization": f"Bearer {_ci_token(stack)}"})
    assert ci.status_code == 403 and "Access to this resource has been disallowed" in ci.text, ci.text


def test_past_the_grants_rate_the_gateway_says_429(stack):
    h = {"Authorization": f"Bearer {_ci_token(stack)}"}
    answers = [requests.get(f"{GATEWAY}/api/v2/dags/{DAG}/dagRuns", headers=h, timeout=30).status_code
               for _ in range(load().inbound_grant("ci").rate.count + 1)]  # earlier tests' calls count too
    assert 429 in answers, answers  # last: the minute's window stays spent
