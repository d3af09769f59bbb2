"""The smoke through the real stack: Airflow's own operator on every connection, `sandbox smoke`, a broken grant
named at the gateway hop, and `sandbox audit` counting what the smoke called."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time

import pytest
import requests

from sandbox.commands.audit import SLACK
from sandbox.spec import fixture_path
from sandbox.systems.tyk.client import TykGateway
from tests.integration.conftest import TEST_PORTS, airflow_session

pytestmark = pytest.mark.integration
CONNECTIONS = {"tyk_dev_orders", "tyk_dev_billing", "tyk_prod_orders", "tyk_prod_billing"}


def smoke(stack, *args: str) -> tuple[int, dict]:
    p = stack.cli("smoke", "-o", "json", *args, check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def audit(stack, *args: str) -> list[dict]:
    return json.loads(stack.cli("audit", "-o", "json", *args).stdout)


def test_a_dag_written_as_airflows_docs_show_reaches_every_route(stack, sandbox_run_dag):
    # HttpOperator(http_conn_id=...) and nothing else; its response_check fails on any sandbox metadata
    # arriving at the service as a header
    shutil.copy(fixture_path("dags/docs_style_http.py"), stack.handle.handoff.dag_folder)
    result = sandbox_run_dag("docs_style_http", timeout=240)
    assert result["state"] == "success" and result["tasks"] == {c: "success" for c in CONNECTIONS}


def test_smoke_is_green_for_the_default_spec(stack, sandbox):
    rc, report = smoke(stack)
    assert rc == 0 and report["ok"], report
    assert {r["connection"] for r in report["rows"]} == CONNECTIONS
    for r in report["rows"]:
        assert [(h["name"], h["ok"]) for h in r["hops"]] == [("connection", True), ("token", True),
                                                             ("gateway", True), ("upstream", True)], r
        assert r["status"] == 200 and r["hops"][3]["detail"] == "HTTP 200, saw client airflow"
    # Airflow's own record agrees: every smoke run succeeded
    api, s = airflow_session(stack)
    for dag_id, run_id in report["runs"].items():
        assert s.get(f"{api}/dags/{dag_id}/dagRuns/{run_id}", timeout=10).json()["state"] == "success"
    # and the test handle exposes the last smoke
    assert sandbox.last_smoke is not None and sandbox.last_smoke.runs == report["runs"]


def test_a_deleted_policy_fails_exactly_its_connection_at_the_gateway(stack):
    gw = TykGateway(f"http://127.0.0.1:{TEST_PORTS['tyk']}", stack.status()["tyk"]["secret"])
    gw.call("DELETE", "/policies/dev-airflow-billing")
    gw.reload()
    try:
        p = stack.cli("smoke", check=False)
        assert p.returncode == 1
        assert ("✗ tyk_dev_billing: gateway hop: HTTP 403 key not authorized: could not apply several policies"
                in p.stdout)
        assert "RuntimeError: sandbox smoke: tyk_dev_billing failed at gateway" in p.stdout  # the task log's line
        rc, report = smoke(stack)
        failed = {r["connection"]: r for r in report["rows"] if not r["ok"]}
        assert rc == 1 and list(failed) == ["tyk_dev_billing"]
        assert failed["tyk_dev_billing"]["gateway_error"] == "key not authorized: could not apply several policies"
        assert [h["ok"] for h in failed["tyk_dev_billing"]["hops"]] == [True, True, False, None]
    finally:
        stack.cli("apply")
    rc, report = smoke(stack)
    assert rc == 0 and report["ok"]


def test_audit_counts_every_smoke_call_by_dag_task_and_api(stack):
    before = {(r["dag"], r["task"], r["api"], r["status"], r["verified"]): r["count"] for r in audit(stack)}
    rc, report = smoke(stack)
    assert rc == 0
    after = {(r["dag"], r["task"], r["api"], r["status"], r["verified"]): r["count"] for r in audit(stack)}
    # each call once, and each verified: Airflow's own task instance was running when the gateway saw it
    made = {(f"sandbox_smoke_{r['env']}", r["service"], f"{r['env']}-{r['service']}", 200, True)
            for r in report["rows"]}
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {k: 1 for k in made}
    # one DAG only, and as CSV a spreadsheet or the csv module reads
    dev = audit(stack, "--dag", "sandbox_smoke_dev", "--since", "1h")
    assert {r["dag"] for r in dev} == {"sandbox_smoke_dev"}
    assert {"dev-orders", "dev-billing"} <= {r["api"] for r in dev} and all(r["api"].startswith("dev-") for r in dev)
    rows = list(csv.DictReader(io.StringIO(stack.cli("audit", "-o", "csv", "--dag", "sandbox_smoke_dev", "--since",
                                                     "1h").stdout)))  # the same window as `dev`
    assert [(r["dag"], r["task"], r["api"], int(r["count"])) for r in rows] == \
        [(r["dag"], r["task"], r["api"], r["count"]) for r in dev]
    # reading consumed nothing: a second reader sees the same
    assert audit(stack, "--dag", "sandbox_smoke_dev", "--since", "1h") == dev


def test_a_call_with_forged_dag_headers_from_outside_airflow_is_unverified_everywhere(stack):
    rc, report = smoke(stack, "--env", "dev")
    assert rc == 0
    run_id = report["runs"]["sandbox_smoke_dev"]
    # a real token of Airflow's account, held outside Airflow (the CLI's, as a user gets one for curl)
    token = json.loads(stack.cli("token", "airflow", "--env", "dev", "-o", "json").stdout)["access_token"]
    gateway = stack.status()["tyk"]["url"]
    forged = {"Authorization": f"Bearer {token}", "X-Airflow-Dag-Id": "sandbox_smoke_dev",
              "X-Airflow-Task-Id": "orders"}
    time.sleep(SLACK + 1)  # the smoke's tasks have ended: past the clocks' slack, no running task explains a call
    for run in ("manual__forged-by-hand", run_id):  # a run that never was; the smoke's run, after it ended
        r = requests.get(f"{gateway}/dev/orders/get", headers={**forged, "X-Airflow-Run-Id": run}, timeout=10)
        assert r.status_code == 200, r.text
    rows = audit(stack, "--dag", "sandbox_smoke_dev", "--since", "10m")
    orders = {r["verified"]: r["count"] for r in rows if (r["task"], r["api"], r["status"]) ==
              ("orders", "dev-orders", 200)}
    assert orders.get(False, 0) >= 2 and orders.get(True, 0) >= 1, rows
    table = stack.cli("audit", "--dag", "sandbox_smoke_dev", "--since", "10m").stdout
    assert "unverified" in table and "set by whoever called" in " ".join(table.split())
    edges = {e["connection"]: e for e in json.loads(stack.cli("map", "-o", "json").stdout)["edges"]}
    (dev,) = [d for d in edges["tyk_dev_orders"]["dags"] if d["dag"] == "sandbox_smoke_dev"]
    assert dev["unverified"] >= 2, dev
