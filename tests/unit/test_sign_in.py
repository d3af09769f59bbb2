"""Airflow's sign-in as apply makes it in Keycloak and hands it to Airflow: plain data, no Keycloak."""

from __future__ import annotations

import json

from sandbox.plan import Addresses, plan
from sandbox.spec import load
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.keycloak import sign_in

DESIRED = plan(load(), Addresses.nowhere())


def test_the_authorization_model_is_the_providers_with_an_affirmative_decision():
    authz = sign_in.authorization(DESIRED.sign_in)
    assert authz["decisionStrategy"] == "AFFIRMATIVE"  # UNANIMOUS denies every request, Admin's too
    names = {p["name"] for p in authz["policies"]}
    assert {"Allow-Viewer", "Allow-User", "Allow-Op", "Allow-Admin", "Allow-SuperAdmin",
            "ReadOnly", "Admin", "User", "Op"} == {n for n in names if "ci" not in n and "hook" not in n}  # callers'

    dag = next(r for r in authz["resources"] if r["name"] == "Dag")
    assert {s["name"] for s in dag["scopes"]} == {"GET", "POST", "PUT", "DELETE", "LIST"}
    assert {"MENU"} == {s["name"] for r in authz["resources"] if r["name"] == "Dags" for s in r["scopes"]}


def test_airflows_client_carries_the_model_its_secret_and_its_callbacks():
    c = sign_in.airflow_client(DESIRED.sign_in, "http://127.0.0.1:28080", "s3cret")
    assert (c["clientId"], c["secret"], c["authorizationServicesEnabled"]) == ("airflow-server", "s3cret", True)
    assert c["redirectUris"] == ["http://127.0.0.1:28080/*"]
    assert c["attributes"][sign_in.MODEL] == sign_in.model_digest(DESIRED.sign_in, "http://127.0.0.1:28080")
    assert sign_in.model_digest(DESIRED.sign_in, "http://127.0.0.1:28080") != \
        sign_in.model_digest(DESIRED.sign_in, "http://127.0.0.1:29080")


def test_a_callers_token_holds_what_airflow_reads():
    c = sign_in.caller_client(DESIRED.sign_in, "sandbox", None)
    assert "secret" not in c  # Keycloak makes one, unless the sandbox chose it
    assert {"profile", "roles"} <= set(c["defaultClientScopes"])  # preferred_username; realm_access for roles
    assert c["protocolMappers"][0]["config"]["included.client.audience"] == "airflow-server"


def test_airflow_reads_its_realm_from_the_lib_folder(tmp_path):
    before = airflow_files.auth_settings(tmp_path, "http://kc")
    assert before["AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM"] == "master"  # nothing applied yet: nobody signs in
    assert airflow_files.write_sign_in(tmp_path, DESIRED) is True
    assert airflow_files.write_sign_in(tmp_path, DESIRED) is False  # unchanged: no restart
    after = airflow_files.auth_settings(tmp_path, "http://kc")
    assert after["AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM"] == "dev"
    assert after["AIRFLOW__KEYCLOAK_AUTH_MANAGER__JWT_FEDERATED_CLIENT_IDS"] == "sandbox,ci,partner-hook"
    assert after["AIRFLOW__KEYCLOAK_AUTH_MANAGER__SERVER_URL"] == "http://kc"
    assert "secret" not in json.dumps(json.loads((tmp_path / airflow_files.SIGN_IN_FILE).read_text())).lower()


def test_the_sandboxs_own_caller_outlives_the_realms_tokens_and_no_other_does():
    s = DESIRED.sign_in
    assert sign_in.caller_client(s, "sandbox", None)["attributes"]["access.token.lifespan"] == "3600"
    assert "access.token.lifespan" not in sign_in.caller_client(s, "ci", None)["attributes"]


def test_a_session_signs_in_again_once_its_keycloak_token_nears_its_end(monkeypatch):
    from sandbox.systems.airflow import client

    asked = []

    def exchange(url, token_url, client_id, secret, keep=None):
        asked.append(len(asked))
        return f"token-{len(asked)}", False

    monkeypatch.setattr(client, "airflow_token_held", exchange)
    auth = client.SignedIn("http://af", "http://kc/token", "sandbox", "s")
    import requests

    first = auth(requests.Request("GET", "http://af/api/v2/dags").prepare()).headers["Authorization"]
    second = auth(requests.Request("GET", "http://af/api/v2/dags").prepare()).headers["Authorization"]
    assert (first, second) == ("Bearer token-1", "Bearer token-2")  # asked per request; the cache decides


def test_a_held_token_airflow_refuses_is_replaced_once_and_a_new_tokens_refusal_is_the_answer(tmp_path, monkeypatch):
    """After a signing-key rotation Keycloak no longer honours the held token and Airflow answers 403: the session
    signs in again, once; a 403 to a new token is Airflow's answer."""
    import http.server
    import threading
    import time

    import requests

    from sandbox.systems.airflow import client

    seen = []

    class Airflow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.headers["Authorization"])
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.headers["Authorization"] == "Bearer new" and self.path != "/api/v2/forbidden"
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Airflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    keep = tmp_path / "airflow-token.json"
    key = [url, "http://kc/token", "sandbox"]
    keep.write_text(json.dumps({"for": key, "token": "old", "expires": time.time() + 600}))
    monkeypatch.setattr(client, "_HELD", {})
    monkeypatch.setattr(client.requests, "post", lambda *a, **k: (_ for _ in ()).throw(AssertionError("asked")))
    made = []

    def sign_in(*args):
        made.append(args)
        client._HELD[tuple(key)] = ("new", time.time() + 600)
        return "new", False

    s = requests.Session()
    s.auth = client.SignedIn(*key, "s", keep)
    try:
        real = client.airflow_token_held
        monkeypatch.setattr(client, "airflow_token_held",
                            lambda *a: real(*a) if client._HELD or keep.exists() else sign_in(*a))
        r = s.post(f"{url}/api/v2/dags", json={"a": 1})
        assert (r.status_code, r.json(), seen) == (200, {"a": 1}, ["Bearer old", "Bearer new"])
        assert len(made) == 1 and not keep.exists()  # the refused token is forgotten, in the home too
        seen.clear()
        assert s.post(f"{url}/api/v2/forbidden", json={}).status_code == 403
        assert seen == ["Bearer new", "Bearer new"]  # held, refused, signed in again once: no loop
    finally:
        server.shutdown()


def test_a_token_kept_in_the_home_serves_the_next_process(tmp_path, monkeypatch):
    import time

    from sandbox.systems.airflow import client

    keep = tmp_path / "airflow-token.json"
    key = ["http://af", "http://kc/token", "sandbox"]
    keep.write_text(json.dumps({"for": key, "token": "kept", "expires": time.time() + 600}))
    monkeypatch.setattr(client, "_HELD", {})
    monkeypatch.setattr(client.requests, "post", lambda *a, **k: (_ for _ in ()).throw(AssertionError("asked")))
    assert client.airflow_token(*key, "s", keep) == "kept"  # no exchange: the kept token has 10 min left
    keep.write_text(json.dumps({"for": ["http://other", "http://kc/token", "sandbox"], "token": "x",
                                "expires": time.time() + 600}))
    monkeypatch.setattr(client, "_HELD", {})
    try:
        client.airflow_token(*key, "s", keep)
        raise AssertionError("another Airflow's token was used")
    except AssertionError as e:
        assert str(e) == "asked"


def test_the_api_server_reads_no_workers_home(tmp_path):
    """A ~/.netrc in the workers' HOME must not reach the API server's calls to Keycloak (same host locally)."""
    from sandbox.paths import SandboxPaths
    from sandbox.runtime.component import ComponentContext
    from sandbox.systems.airflow.component import Airflow

    secrets = {k: "x" for k in ("airflow_fernet_key", "airflow_jwt_secret", "airflow_api_secret_key",
                                "airflow_client_secret")}
    ctx = ComponentContext(SandboxPaths(tmp_path / "h", tmp_path / "c"),
                           {"airflow": 1, "keycloak": 2, "openbao": 3}, secrets)
    units = Airflow().processes(ctx)
    homes = {u.name: u.env["HOME"] for u in units}
    assert homes["airflow-api-server"] != homes["airflow-scheduler"] == str(ctx.handoff.home)
    plan = json.loads(Airflow().launcher(ctx, units).env["SANDBOX_SERVICES"])
    own = {name: env for name, *_, env in plan}
    assert own["airflow-api-server"] == {"HOME": homes["airflow-api-server"]} and own["airflow-scheduler"] == {}


def test_a_caller_granted_dags_may_trigger_and_read_those_only():
    from sandbox.spec import parse
    from tests.unit.test_plan import INBOUND_SPEC

    s = plan(parse(INBOUND_SPEC), Addresses.nowhere()).sign_in
    by_name = {p["name"]: p for p in sign_in.authorization(s)["policies"]}
    assert json.loads(by_name["Client-ci"]["config"]["clients"]) == ["ci"]
    regex = by_name["Dags-of-ci"]["config"]
    assert (regex["targetClaim"], regex["pattern"], regex["targetContextAttributes"]) == \
        ("resource_id", "^(sandbox_smoke_dev)$", "true")
    runs = by_name["Runs-of-ci"]["config"]
    assert (json.loads(runs["resources"]), json.loads(runs["scopes"]), json.loads(runs["applyPolicies"])) == \
        (["Dag"], ["GET", "POST"], ["ci-on-its-dags"])
    assert "Dags-of-partner-hook" not in by_name  # assets only: no DAG of its own
    events = by_name["Asset-events-of-partner-hook"]["config"]  # which assets: the gateway's check
    assert (json.loads(events["resources"]), json.loads(events["scopes"]), json.loads(events["applyPolicies"])) == \
        (["Asset", "AssetAlias"], ["GET", "LIST", "POST"], ["Client-partner-hook"])
