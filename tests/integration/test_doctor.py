"""`sandbox doctor` on the real Keycloak and Airflow: green, then each fault injected by hand, named, repaired."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from keycloak import KeycloakAdmin

from sandbox.systems.keycloak.rotation import invalidate_rotated
from tests.integration.conftest import airflow_session, kc_admin

pytestmark = pytest.mark.integration


def doctor(stack, *args: str) -> tuple[int, list[dict]]:
    p = stack.cli("doctor", "-o", "json", *args, check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def hop(d: dict, name: str) -> dict:
    return next(h for h in d["hops"] if h["name"] == name)


def admin(stack) -> KeycloakAdmin:
    return kc_admin(stack, "dev")


@contextmanager
def injected(stack, conn: str):
    """Around a fault injected by hand: `sandbox apply` takes it out whatever the assertions said, so one failing
    test cannot leak its fault into the next; then doctor must be green again."""
    try:
        yield
    finally:
        stack.cli("apply")
    rc, (d,) = doctor(stack, "--connection", conn)
    assert rc == 0 and d["ok"], d


def test_green_stack_every_checked_hop_is_healthy(stack):
    rc, results = doctor(stack)
    assert rc == 0
    assert {d["connection"] for d in results} == {"tyk_dev_orders", "tyk_dev_billing", "tyk_prod_orders",
                                                  "tyk_prod_billing"}
    for d in results:
        marks = {h["name"]: h["ok"] for h in d["hops"]}
        assert marks == {"connection": True, "secret": True, "token": True, "claims": True, "gateway": True,
                         "upstream": True}
        assert hop(d, "gateway")["detail"].startswith(f"GET /{d['connection'].split('_')[1]}/")
        assert d["verdict"] == "Every checked hop is healthy."


def test_rotated_secret_is_named(stack):
    with injected(stack, "tyk_dev_orders"):
        a = admin(stack)
        uuid = a.get_client_id("airflow")
        a.generate_client_secrets(uuid)  # rotated centrally, the old secret invalidated at once (no grace)
        invalidate_rotated(a, "dev", uuid)  # Airflow still has the old one
        rc, (d,) = doctor(stack, "--connection", "tyk_dev_orders")
        assert rc == 1
        assert hop(d, "token")["ok"] is False and "HTTP 401" in hop(d, "token")["detail"]
        assert d["verdict"] == ("Keycloak refuses airflow's secret: it was rotated in Keycloak and Airflow still "
                                "has the old one. Fix: `sandbox apply` redistributes it.")


def test_missing_scope_is_named(stack):
    with injected(stack, "tyk_dev_orders"):
        a = admin(stack)
        uuid = a.get_client_id("airflow")
        scope_id = next(s["id"] for s in a.get_client_scopes() if s["name"] == "orders.write")
        a.delete_client_default_client_scope(uuid, scope_id)
        rc, (d,) = doctor(stack, "--connection", "tyk_dev_orders")
        # the connection asks for its scopes, so Keycloak refuses at the token hop, before any gateway
        assert rc == 1 and hop(d, "token")["ok"] is False and "HTTP 400 invalid_scope" in hop(d, "token")["detail"]
        assert hop(d, "claims") == {"name": "claims", "ok": None, "detail": "not checked: an earlier hop failed"}
        assert d["verdict"] == ("Keycloak will not grant airflow the scopes its connection asks for (orders.read "
                                "orders.write): the client lacks one of them. Fix: `sandbox apply` restores the "
                                "client's scopes.")


def test_wrong_audience_is_named(stack):
    with injected(stack, "tyk_dev_billing"):
        a = admin(stack)
        uuid = a.get_client_id("airflow")
        mapper = next(m for m in a.get_mappers_from_client(uuid) if m["name"] == "gateway-audience")
        a.remove_client_mapper(uuid, mapper["id"])
        rc, (d,) = doctor(stack, "--connection", "tyk_dev_billing")
        assert rc == 1 and hop(d, "claims")["detail"].endswith("lacks 'sandbox-gateway'")
        assert d["verdict"].startswith("The gateway would refuse airflow's token in dev: aud ")


def test_basic_auth_login_on_the_connection_is_named(stack):
    with injected(stack, "tyk_prod_orders"):
        api, s = airflow_session(stack)
        assert s.patch(f"{api}/connections/tyk_prod_orders", params={"update_mask": "login"},
                       json={"connection_id": "tyk_prod_orders", "conn_type": "http", "login": "svc-user"},
                       timeout=10).ok
        rc, (d,) = doctor(stack, "--connection", "tyk_prod_orders")
        assert rc == 1
        assert hop(d, "connection") == {"name": "connection", "ok": False, "detail": "login 'svc-user' is set"}
        assert d["verdict"] == ("tyk_prod_orders has a login, so Airflow's HTTP hook sends Basic auth and silently "
                                "drops the Bearer token. Fix: clear the login (`sandbox apply`).")


def test_a_stale_routes_entry_is_named(stack):
    routes_file = stack.handle.handoff.lib / "sandbox_routes.json"
    with injected(stack, "tyk_prod_orders"):
        routes = json.loads(routes_file.read_text())
        # a prod connection that would fetch its token from dev: the classic cross-environment mix-up
        routes["tyk_prod_orders"].update(token_url=routes["tyk_dev_orders"]["token_url"],
                                         credential_variable=routes["tyk_dev_orders"]["credential_variable"])
        routes_file.write_text(json.dumps(routes))
        rc, (d,) = doctor(stack, "--connection", "tyk_prod_orders")
        assert rc == 1 and hop(d, "connection") == {
            "name": "connection", "ok": False,
            "detail": "sandbox_routes.json differs from the spec: credential_variable, token_url"}
        assert d["verdict"] == ("tyk_prod_orders's entry in sandbox_routes.json differs from the spec: "
                                "credential_variable, token_url, so tasks get their token from the wrong place. "
                                "Fix: `sandbox apply` rewrites the file.")


def test_unknown_connection(stack):
    p = stack.cli("doctor", "--connection", "nope", check=False)
    assert p.returncode == 2 and "No connection nope in any environment" in p.stderr and "tyk_dev_orders" in p.stderr
