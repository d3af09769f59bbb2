"""One spec, seeded into the real Keycloak and Airflow: tokens, idempotence, drift repair, no leaked secrets."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import requests

from sandbox.plan import AUDIENCE, Addresses, plan
from sandbox.spec import fixture_path, load
from sandbox.systems.airflow.token_helper import ClientCredentialsAuth, TokenError
from sandbox.systems.openbao.client import Vault
from tests.integration.conftest import TEST_PORTS, airflow_session, kc_admin

pytestmark = pytest.mark.integration
KC = f"http://127.0.0.1:{TEST_PORTS['keycloak']}"
SPEC = load()
DESIRED = plan(SPEC, Addresses(KC, "127.0.0.1", TEST_PORTS["tyk"], f"http://127.0.0.1:{TEST_PORTS['upstream']}"))


def test_up_seeded_every_client_and_its_token_carries_the_grant(stack):
    for client in DESIRED.clients:
        out = json.loads(stack.cli("token", client.client_id, "--env", client.realm, "-o", "json").stdout)
        claims = out["claims"]
        assert claims["iss"] == f"{KC}/realms/{client.realm}"
        assert AUDIENCE in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
        assert claims["azp"] == client.client_id and claims["sub"]
        assert set(client.scopes) <= set(claims["scope"].split())
        assert claims["exp"] - claims["iat"] == SPEC.environments[client.realm].token_lifespan


def test_second_apply_changes_nothing(stack):
    out = json.loads(stack.cli("apply", "-o", "json").stdout)
    assert out["changes"] == []
    # the bundled spec: dev and prod; airflow in both, reporting and ci in dev; 2 services x 2 environments and
    # Airflow's API in dev; a policy per grant and environment; ci's grant adds its scope, a client, a route, a policy
    assert out["counts"] == {"realms": 2, "scopes": 9, "clients": 5, "apis": 5, "policies": 7, "connections": 4,
                             "people": 1}
    assert json.loads(stack.cli("plan", "-o", "json").stdout)["changes"] == []


def test_hand_made_drift_is_shown_by_plan_and_repaired_by_apply(stack):
    admin = kc_admin(stack, "dev")
    admin.delete_client(admin.get_client_id("reporting"))
    api, s = airflow_session(stack)
    assert s.delete(f"{api}/connections/tyk_dev_billing", timeout=10).status_code == 204
    # and a scope removed from a client, the way someone "tidies up" in the admin console
    uuid = admin.get_client_id("airflow")
    scope_id = next(x["id"] for x in admin.get_client_scopes() if x["name"] == "billing.read")
    admin.delete_client_default_client_scope(uuid, scope_id)

    planned = {(c["system"], c["action"], c["kind"], c["name"])
               for c in json.loads(stack.cli("plan", "-o", "json").stdout)["changes"]}
    assert planned == {("keycloak", "create", "client", "dev/reporting"),
                       ("keycloak", "update", "client", "dev/airflow"),
                       ("airflow", "create", "connection", "tyk_dev_billing")}
    applied = json.loads(stack.cli("apply", "-o", "json").stdout)["changes"]
    # plus the CLI's copy of the secrets: the re-created client has a new one
    assert {(c["system"], c["action"], c["kind"], c["name"]) for c in applied} == \
        planned | {("sandbox", "update", "secrets", "clients.json"),
                   ("openbao", "update", "secret", "sandbox/clients/dev/reporting")}  # its new secret, in the vault
    assert json.loads(stack.cli("plan", "-o", "json").stdout)["changes"] == []
    claims = json.loads(stack.cli("token", "airflow", "--env", "dev", "-o", "json").stdout)["claims"]
    assert "billing.read" in claims["scope"].split()


def test_objects_the_sandbox_did_not_create_are_left_alone(stack):
    admin = kc_admin(stack, "dev")
    admin.create_client({"clientId": "hand-made", "serviceAccountsEnabled": True, "publicClient": False})
    api, s = airflow_session(stack)
    s.post(f"{api}/connections", json={"connection_id": "my_own", "conn_type": "http", "host": "example"}, timeout=10)
    try:
        assert json.loads(stack.cli("plan", "-o", "json").stdout)["changes"] == []
    finally:
        admin.delete_client(admin.get_client_id("hand-made"))
        s.delete(f"{api}/connections/my_own", timeout=10)


def test_no_client_secret_in_airflow_connection_metadata(stack):
    secrets = json.loads(stack.paths.client_secrets.read_text())
    assert set(secrets) == {f"{c.realm}/{c.client_id}" for c in DESIRED.clients}
    api, s = airflow_session(stack)
    conns = s.get(f"{api}/connections", params={"limit": 100}, timeout=10).json()["connections"]
    assert {c["connection_id"] for c in conns} == {c.conn_id for c in DESIRED.connections}
    routes = json.loads((stack.handle.handoff.lib / "sandbox_routes.json").read_text())
    for c in conns:
        # nothing the HTTP hook would send: no login (Basic auth), no extra (each key becomes a header)
        assert c["login"] is None and c["password"] is None and not c["extra"]
        assert c["host"] == routes[c["connection_id"]]["url"] and c["description"].startswith("[managed by ")
        raw = json.dumps(c)
        assert not [v for v in secrets.values() if v in raw]
        assert routes[c["connection_id"]]["credential_variable"].startswith("sandbox_client_secret_")
    assert not [v for v in secrets.values() if v in json.dumps(routes)]
    # the secret is in the vault, where Airflow's own token reads it; not in the metastore
    vault = Vault(stack.status()["openbao"]["url"], stack.paths.airflow_vault_token.read_text())
    for env in ("dev", "prod"):
        assert vault.kv_get(f"variables/sandbox_client_secret_{env}_airflow") == {"value": secrets[f"{env}/airflow"]}
    assert s.get(f"{api}/variables/sandbox_client_secret_dev_airflow", timeout=10).status_code == 404


def test_token_helper_caches_and_refreshes_before_expiry(stack):
    secrets = json.loads(stack.paths.client_secrets.read_text())
    now = [time.time()]
    auth = ClientCredentialsAuth(f"{KC}/realms/prod/protocol/openid-connect/token", "airflow",
                                 secrets["prod/airflow"], clock=lambda: now[0])
    first = auth.token()
    assert auth.token() == first and auth.fetches == 1
    now[0] += SPEC.environments["prod"].token_lifespan * 0.5
    assert auth.fetches == 1 and auth.token() == first
    now[0] += SPEC.environments["prod"].token_lifespan * 0.35  # past 80% of its life: refreshed early
    auth.token()
    assert auth.fetches == 2
    r = requests.get(f"{KC}/realms/prod/protocol/openid-connect/userinfo", auth=auth, timeout=10)
    # the bearer reached Keycloak and was accepted as a valid token (a bad one is a 401); userinfo itself
    # wants the `openid` scope, which a service account's token does not carry
    assert r.status_code == 403
    assert r.headers["WWW-Authenticate"] == ('Bearer realm="prod", error="insufficient_scope", '
                                             'error_description="Missing openid scope"')


def test_token_helper_names_a_refused_secret(stack):
    auth = ClientCredentialsAuth(f"{KC}/realms/dev/protocol/openid-connect/token", "airflow", "wrong")
    with pytest.raises(TokenError) as e:
        auth.token()
    assert e.value.status == 401
    assert str(e.value) == ("token request for airflow refused: HTTP 401 unauthorized_client: Invalid client or "
                            "Invalid client credentials")


def test_token_for_unknown_account_or_environment(stack):
    p = stack.cli("token", "nobody", check=False)
    assert p.returncode == 2 and "No account named 'nobody'" in p.stderr and "airflow, reporting" in p.stderr
    p = stack.cli("token", "reporting", "--env", "prod", check=False)
    assert p.returncode == 2 and "reporting has no client in 'prod'" in p.stderr


def test_a_bad_spec_applies_nothing(stack, tmp_path):
    bad = tmp_path / "bad.yaml"
    with open(SPEC.source) as f:
        bad.write_text(f.read().replace("service: billing", "service: shipping"))
    before = json.loads(stack.cli("plan", "-o", "json").stdout)
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "service: shipping" in text)
    for args in (["apply"], ["plan"], ["up"]):
        p = stack.cli(*args, "--spec", str(bad), check=False)
        assert p.returncode == 2, args
        assert f"{bad}, line {line}: grants[1].service: no service named 'shipping'" in p.stderr
        assert "Traceback" not in p.stderr
    assert json.loads(stack.cli("plan", "-o", "json").stdout)["changes"] == before["changes"] == []


def test_a_real_task_gets_its_token_from_connection_and_secrets_backend(stack, sandbox_run_dag):
    assert (stack.handle.handoff.lib / "sandbox_auth.py").is_file()
    assert not (stack.handle.handoff.dag_folder / "sandbox_auth.py").exists()
    shutil.copy(fixture_path("dags/token_probe.py"), stack.handle.handoff.dag_folder)
    result = sandbox_run_dag("token_probe", timeout=240)
    assert result == {**result, "state": "success", "tasks": {"probe": "success"}}
