"""The real Tyk gateway, applied from the spec: every grant passes, every wrong token is refused in Tyk's words."""

from __future__ import annotations

import json

import pytest
import requests

from sandbox.plan import AUDIENCE, Addresses, plan
from sandbox.spec import AIRFLOW_SERVICE, load
from sandbox.systems.airflow.token_helper import decode_claims
from sandbox.systems.tyk.applier import api_payload
from sandbox.systems.tyk.client import TykGateway
from tests.integration.conftest import TEST_PORTS, kc_admin

pytestmark = pytest.mark.integration
KC = f"http://127.0.0.1:{TEST_PORTS['keycloak']}"
GATEWAY = f"http://127.0.0.1:{TEST_PORTS['tyk']}"
DESIRED = plan(load(), Addresses(KC, "127.0.0.1", TEST_PORTS["tyk"], f"http://127.0.0.1:{TEST_PORTS['upstream']}"))


def call(stack, account: str, service: str, path: str = "", env: str = "dev") -> tuple[int, dict]:
    p = stack.cli("call", account, service, path, "--env", env, "-o", "json", check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def token(stack, account: str, env: str) -> str:
    return stack.cli("token", account, "--env", env).stdout.strip()


def gateway(stack) -> TykGateway:
    return TykGateway(GATEWAY, stack.status()["tyk"]["secret"])


def test_tyk_hello_with_redis(stack):
    body = requests.get(GATEWAY + "/hello", timeout=10).json()
    assert body["status"] == "pass" and body["details"]["redis"]["status"] == "pass"


def test_every_grant_reaches_its_upstream_through_the_gateway(stack):
    outbound = [p for p in DESIRED.policies if p.service != AIRFLOW_SERVICE]  # into Airflow: test_inbound.py
    assert outbound
    for pol in outbound:
        rc, out = call(stack, pol.account, pol.service, "probe/1", env=pol.env)
        assert rc == 0 and out["status"] == 200 and out["gateway_error"] is None, (pol.policy_id, out)
        # the upstream saw the request, on the route's path, with the bearer the gateway accepted
        assert out["body"]["url"].endswith(f"/anything/{pol.service}/probe/1"), out["body"]
        bearer = out["body"]["headers"]["Authorization"][0]  # echoed back, and masked: a token is a credential
        assert bearer == "Bearer ********", bearer
        assert out["claims"]["azp"] == pol.account and out["claims"]["exp"] > 0


def test_a_token_without_the_services_scope_gets_the_policy_error(stack):
    rc, out = call(stack, "reporting", "billing")  # reporting is granted orders only
    assert rc == 1 and out["status"] == 403
    assert out["gateway_error"] == "key not authorized: no matching policy found in scope claim"


def test_no_token_is_missing_authorization(stack):
    r = requests.get(f"{GATEWAY}/dev/orders/x", timeout=10)
    assert (r.status_code, r.json()) == (401, {"error": "Authorization field missing"})
    assert r.headers["WWW-Authenticate"] == "Bearer"  # RFC 6750's challenge


def test_a_prod_token_on_a_dev_route_is_refused(stack):
    bearer = {"Authorization": f"Bearer {token(stack, 'airflow', 'prod')}"}
    r = requests.get(f"{GATEWAY}/dev/orders/x", headers=bearer, timeout=10)
    assert r.status_code == 403 and r.json()["error"].startswith("Key not authorized"), r.text
    # and the same token passes its own environment's route
    ok = requests.get(f"{GATEWAY}/prod/orders/x", headers=bearer, timeout=10)
    assert ok.status_code == 200


def test_a_token_without_the_gateway_audience_is_refused(stack):
    admin = kc_admin(stack, "dev")
    admin.create_client({"clientId": "no-audience", "serviceAccountsEnabled": True, "publicClient": False,
                         "standardFlowEnabled": False, "defaultClientScopes": ["basic", "orders.read"]})
    uuid = admin.get_client_id("no-audience")
    try:
        secret = admin.get_client_secrets(uuid)["value"]
        tok = requests.post(f"{KC}/realms/dev/protocol/openid-connect/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": "no-audience", "client_secret": secret}).json()
        got = decode_claims(tok["access_token"])
        assert "orders.read" in got["scope"].split() and AUDIENCE not in json.dumps(got.get("aud"))
        r = requests.get(f"{GATEWAY}/dev/orders/x", headers={"Authorization": f"Bearer {tok['access_token']}"},
                         timeout=10)
        assert (r.status_code, r.json()) == (401, {"error": "Key not authorized: audience claim is required but not "
                                                            "present in token"})
    finally:
        admin.delete_client(uuid)


def test_apply_twice_changes_nothing_in_the_gateway(stack):
    assert [c for c in json.loads(stack.cli("apply", "-o", "json").stdout)["changes"] if c["system"] == "tyk"] == []
    report = json.loads(stack.cli("plan", "-o", "json").stdout)
    assert report["changes"] == [] and "tyk" not in report["skipped"]


def test_hand_made_gateway_drift_is_planned_and_repaired(stack):
    gw = gateway(stack)
    gw.call("DELETE", "/apis/oas/dev-orders")
    pol = gw.call("GET", "/policies/dev-airflow-billing").json()
    gw.call("PUT", "/policies/dev-airflow-billing", json={**pol, "rate": 1, "per": 3600})
    gw.reload()
    try:
        assert requests.get(f"{GATEWAY}/dev/orders/x", timeout=10).status_code == 404  # the route is gone
        planned = {(c["system"], c["action"], c["kind"], c["name"])
                   for c in json.loads(stack.cli("plan", "-o", "json").stdout)["changes"]}
        assert planned == {("tyk", "create", "api", "dev-orders"), ("tyk", "update", "policy", "dev-airflow-billing")}
    finally:
        applied = json.loads(stack.cli("apply", "-o", "json").stdout)["changes"]
    assert {(c["action"], c["kind"], c["name"]) for c in applied if c["system"] == "tyk"} == {
        ("create", "api", "dev-orders"), ("update", "policy", "dev-airflow-billing")}
    assert json.loads(stack.cli("plan", "-o", "json").stdout)["changes"] == []
    assert gw.call("GET", "/policies/dev-airflow-billing").json()["rate"] == 20
    assert call(stack, "airflow", "orders")[1]["status"] == 200


def test_an_api_without_the_managed_mark_is_left_alone(stack):
    gw = gateway(stack)
    mine = api_payload(DESIRED.apis[0])
    mine.pop("x-sandbox")
    mine["x-tyk-api-gateway"]["info"].update(id="hand-made", name="hand-made")
    mine["x-tyk-api-gateway"]["server"]["listenPath"]["value"] = "/hand-made/"
    gw.call("POST", "/apis/oas", json=mine)
    gw.reload()
    try:
        assert "hand-made" in gw.apis()
        assert json.loads(stack.cli("plan", "-o", "json").stdout)["changes"] == []
        stack.cli("apply")
        assert "hand-made" in gw.apis()
    finally:
        gw.call("DELETE", "/apis/oas/hand-made")
        gw.reload()


def test_the_plugin_session_goes_through_the_gateway(sandbox_session):
    r = sandbox_session("dev", "orders").get("orders/42", headers={"X-Airflow-Dag-Id": "probe"})
    assert r.status_code == 200 and r.json()["url"].endswith("/anything/orders/orders/42")
    assert r.json()["headers"]["X-Airflow-Dag-Id"] == ["probe"]
    assert sandbox_session("dev", "orders", as_="reporting").get("x").status_code == 200
    refused = sandbox_session("dev", "billing", as_="reporting").get("x")
    assert refused.status_code == 403 and "no matching policy" in refused.json()["error"]
