"""doctor's pure checks, from plain data."""

import base64
import json
from pathlib import Path

from sandbox.plan import AirflowConnection
from sandbox.systems.airflow.doctor import env_var_name, netrc_login, proxied, shadowing, stale_tokens
from sandbox.systems.keycloak.doctor import check_claims

WANT = AirflowConnection("tyk_dev_orders", "dev", "orders", "http://127.0.0.1:1/dev/orders",
                         "http://kc/realms/dev/protocol/openid-connect/token", "airflow", "orders.read orders.write",
                         "sandbox-gateway", "sandbox_client_secret_dev_airflow")
ISS = "http://kc/realms/dev"
GOOD = {"exp": 1000, "iss": ISS, "aud": "sandbox-gateway", "scope": "orders.write orders.read profile"}


def test_env_var_shadowing():
    assert env_var_name("tyk_dev_orders") == "AIRFLOW_CONN_TYK_DEV_ORDERS"
    envs = {"1 scheduler": {"AIRFLOW_CONN_TYK_DEV_ORDERS": "http://elsewhere"}, "2 api-server": {}}
    assert shadowing("tyk_dev_orders", envs) == ["1 scheduler"]
    assert shadowing("tyk_dev_billing", envs) == []


def test_good_claims():
    assert check_claims(GOOD, WANT, ISS, {"k1"}, "k1", now=990) == []
    assert check_claims({**GOOD, "aud": ["account", "sandbox-gateway"]}, WANT, ISS, {"k1"}, "k1", now=1020) == []


def test_each_claim_problem():
    assert check_claims(GOOD, WANT, ISS, {"k1"}, "k1", now=1100) == ["token expired 100s ago"]
    assert check_claims({**GOOD, "iss": "http://localhost/realms/dev"}, WANT, ISS, {"k1"}, "k1", now=0) == [
        "iss is 'http://localhost/realms/dev', the gateway trusts 'http://kc/realms/dev'"]
    assert check_claims({**GOOD, "aud": "account"}, WANT, ISS, {"k1"}, "k1", now=0) == [
        "aud ['account'] lacks 'sandbox-gateway'"]
    assert check_claims({**GOOD, "scope": "orders.read"}, WANT, ISS, {"k1"}, "k1", now=0) == [
        "scope lacks orders.write"]
    assert check_claims(GOOD, WANT, ISS, {"k2"}, "k1", now=0) == ["kid k1 is not among the realm's current keys"]


def test_a_token_from_the_future_and_a_lifespan_override():
    assert check_claims({**GOOD, "iat": 1300}, WANT, ISS, {"k1"}, "k1", now=1000) == [
        "iat is 300s in the future: the IdP's clock is ahead of this one"]
    assert check_claims({**GOOD, "iat": 999}, WANT, ISS, {"k1"}, "k1", now=999, lifespan=300) == [
        "the token lives 1s, the spec says 300s (a lifespan override on the client)"]
    assert check_claims({**GOOD, "iat": 700}, WANT, ISS, {"k1"}, "k1", now=990, lifespan=300) == []


def test_proxy_variables_and_no_proxy():
    url = "http://127.0.0.1:28082/dev/orders"
    assert proxied(url, {"1 scheduler": {"HTTP_PROXY": "http://proxy:1"}}) == ["1 scheduler via http://proxy:1"]
    assert proxied(url, {"1 scheduler": {"HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost,127.0.0.1"}}) == []
    assert proxied(url, {"1 s": {"HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost,127.0.0.1:28080"}}) == [
        "1 s via http://p:1"]
    assert proxied(url, {"1 s": {"HTTPS_PROXY": "http://p:1"}}) == []  # an http URL: HTTPS_PROXY does not apply


def test_netrc_entry_for_the_host(tmp_path):
    assert netrc_login(tmp_path, "http://127.0.0.1:1/dev/orders") is None
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login deploy password x\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert netrc_login(tmp_path, "http://127.0.0.1:1/dev/orders") == "deploy"
    assert netrc_login(tmp_path, "http://gateway:1/") is None


def test_stale_tokens_in_variables():
    def jwt(claims: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"e30.{body}.sig"

    variables = [{"key": "cached", "value": jwt({"azp": "airflow", "iss": ISS, "exp": 900})},
                 {"key": "fresh", "value": jwt({"azp": "airflow", "iss": ISS, "exp": 2000})},
                 {"key": "prod", "value": jwt({"azp": "airflow", "iss": "http://kc/realms/prod", "exp": 900})},
                 {"key": "other", "value": jwt({"azp": "reporting", "iss": ISS, "exp": 900})},
                 {"key": "plain", "value": "x"}]
    assert stale_tokens(variables, "airflow", ISS, now=1000) == [("cached", 100)]


def test_an_issuer_that_follows_the_request_host_is_named():
    from sandbox.systems.keycloak.doctor import follows_request_host

    trusted = "http://127.0.0.1:28081/realms/dev"
    inside = "http://keycloak:8080/realms/dev/protocol/openid-connect/token"
    assert follows_request_host("http://keycloak:8080/realms/dev", inside, trusted)
    assert not follows_request_host(trusted, inside, trusted)  # a fixed hostname: all is well
    # another host name the token was not fetched at: a plain issuer mismatch, not this
    assert not follows_request_host("http://localhost:28081/realms/dev", inside, trusted)
    assert not follows_request_host(None, inside, trusted)


def test_a_task_that_failed_before_any_call_is_a_task_symptom():
    from sandbox.commands.smoke import SmokeRow
    from sandbox.scenarios import CATALOGUE
    from sandbox.scenarios.repro import observed

    hops = [{"name": h, "ok": None, "detail": "not reached", "ms": None} for h in ("connection", "gateway")]
    row = SmokeRow("tyk_dev_orders", "dev", "orders", False, None, hops,
                   verdict="the smoke task recorded nothing (failed)",
                   log=["TriggerNotBuilt: the triggerer could not build airflow.providers.http.triggers.http."
                        "HttpTrigger: ModuleNotFoundError: No module named 'team_http_auth'"])
    seen = observed(row)
    assert seen.hop == "task" and CATALOGUE["triggerer-import"].expected.matches(seen)
    assert observed(SmokeRow("c", "dev", "orders", True, 200, hops)) is None


# ---- the hop table's judges: each hop's verdict from plain data -------------------------------------------------
def test_the_hops_are_a_table_in_the_order_a_call_takes_them():
    from sandbox.commands.doctor import HOP_CHECKS, HOPS

    names = [f.__name__.strip("_").replace("_hop_of", "").replace("_hop", "") for f in HOP_CHECKS]
    assert names == list(HOPS[:-1])  # the upstream is checked apart, whatever happened before


def test_judge_connection_names_the_first_finding():
    from sandbox.runtime.base import AirflowHandoff
    from sandbox.systems.airflow.doctor import Seen, judge_connection

    handoff = AirflowHandoff(*(Path("/nonexistent") / n for n in ("v.json", "dags", "home", "lib")))
    hop, verdict = judge_connection(Seen(WANT, None, {}, handoff))
    assert not hop.ok and "tyk_dev_orders" in verdict and "sandbox apply" in verdict
    shadowed = {"1 scheduler": {"AIRFLOW_CONN_TYK_DEV_ORDERS": "http://elsewhere"}}
    hop, verdict = judge_connection(Seen(WANT, {"host": WANT.url}, shadowed, handoff))
    assert not hop.ok and "AIRFLOW_CONN_TYK_DEV_ORDERS" in verdict


def test_judge_secret():
    from sandbox.systems.openbao.doctor import judge_secret

    assert judge_secret(WANT, "s3cret", []) == (judge_secret(WANT, "s3cret", [])[0], None)
    assert judge_secret(WANT, "s3cret", [])[0].ok
    hop, verdict = judge_secret(WANT, None, [])
    assert not hop.ok and "No client secret for airflow" in verdict
    hop, verdict = judge_secret(WANT, "s3cret", [("orders_token", 42)])
    assert not hop.ok and "orders_token holds an access token that expired 42s ago" in verdict
    sealed = "OpenBao refused GET /v1/airflow/data/variables/x: 503 Vault is sealed."
    hop, verdict = judge_secret(WANT, None, [], sealed)
    assert not hop.ok and "503 Vault is sealed" in hop.detail and "Fix: `sandbox up`" in verdict


def test_judge_token_by_keycloaks_answer():
    from sandbox.systems.airflow.token_helper import TokenError
    from sandbox.systems.keycloak.doctor import judge_token

    hop, verdict = judge_token(WANT, None, 12.3)
    assert hop.ok and verdict is None and "12 ms" in hop.detail
    assert "will not grant airflow the scopes" in judge_token(WANT, TokenError("invalid_scope", 400), 1)[1]
    assert "rotated in Keycloak" in judge_token(WANT, TokenError("unauthorized_client", 401), 1)[1]
    hop, verdict = judge_token(WANT, TokenError("connection refused"), 1)
    assert not hop.ok and "refused a token for airflow (connection refused)" in verdict


def test_judge_claims_names_an_unfixed_hostname_before_the_issuer():
    from sandbox.systems.keycloak.doctor import judge_claims

    hop, verdict = judge_claims(WANT, GOOD, ISS, [])
    assert hop.ok and verdict is None
    inner = {**GOOD, "iss": "http://kc/realms/dev"}
    hop, verdict = judge_claims(WANT, inner, "http://127.0.0.1:28081/realms/dev", ["iss differs"])
    assert not hop.ok and "hostname is not fixed" in verdict
    hop, verdict = judge_claims(WANT, GOOD, ISS, ["scope lacks orders.write"])
    assert "would refuse airflow's token in dev: scope lacks orders.write" in verdict


def test_a_teams_vault_backend_is_read_from_the_workers_environment_and_its_paths_follow_the_provider():
    from sandbox.systems.openbao import team_backend as tv

    kwargs = {"url": "http://openbao:8200", "mount_point": "airflow", "kv_engine_version": 1, "token": "t"}
    envs = {"1 scheduler": {tv.BACKEND_VAR: tv.VAULT_BACKEND, tv.KWARGS_VAR: json.dumps(kwargs)},
            "2 api-server": {}, "3 scheduler worker": {tv.BACKEND_VAR: tv.VAULT_BACKEND, tv.KWARGS_VAR: "not json"}}
    team = tv.configured(envs)
    assert (team.cls, team.processes, team.kwargs) == (tv.VAULT_BACKEND, 2, kwargs)
    assert tv.configured({"1 scheduler": {}}) is None
    assert tv.read_path(kwargs, "c") == ("airflow/connections/c", 1)
    assert tv.read_path({}, "c") == ("secret/data/connections/c", 2)  # the provider's defaults
    assert tv.read_path({"connections_path": ["team/conns", "common"], "kv_engine_version": "2"}, "c") == \
        ("secret/data/team/conns/c", 2)
    assert tv.read_path({"connections_path": None}, "c") is None
    # another backend, or a login other than a token: not repeated from the host
    assert tv.read(tv.TeamBackend("x.AwsBackend", 1, kwargs), "c", lambda u: (u, {})) is None
    assert tv.read(tv.TeamBackend(tv.VAULT_BACKEND, 1, {**kwargs, "auth_type": "approle"}), "c",
                   lambda u: (u, {})) is None


def test_a_teams_vault_backend_that_gives_nothing_is_named_with_where_the_task_went_instead():
    from sandbox.systems.openbao import team_backend as tv

    team = tv.TeamBackend(tv.VAULT_BACKEND, 1, {})
    found = tv.VaultRead("airflow/data/connections/c", 2, 200, "OK", {"host": "h"})
    assert tv.judge("c", team, found, "http://legacy") is None
    assert tv.judge("c", team, tv.VaultRead("p", 2, 404, "Not Found"), None) is None  # not the team's to serve
    assert tv.judge("c", None, None, None) is None
    assert tv.judge("c", team, tv.VaultRead("p", 2, None, "its token ...", checked=False), None) is None
    detail, verdict = tv.judge("c", team, tv.VaultRead("airflow/data/connections/c", 2, 403, "permission denied"),
                               "http://gw/orders-v1")
    assert "403 permission denied" in detail and "logs that at DEBUG" in verdict
    assert "from the metastore instead (http://gw/orders-v1)" in verdict
    _, verdict = tv.judge("c", team, tv.VaultRead("p", 2, 503, "Vault is sealed"), None)
    assert "(503 Vault is sealed)" in verdict and "`conn_id isn't defined`" in verdict
    _, verdict = tv.judge("c", team, tv.VaultRead("airflow/connections/c", 1, 404, f"{tv.V2_ONLY} engine."), None)
    assert "KV version 1" in verdict and "kv_engine_version 2" in verdict


def test_a_forked_airflow_service_is_named_by_its_own_name():
    from sandbox.systems.airflow.doctor import process_label

    assert process_label(["/v/bin/python3", "/v/bin/airflow", "scheduler", "--skip-serve-logs"], "airflow") == \
        "/v/bin/airflow scheduler"
    assert process_label(["/v/bin/python", "-m", "sandbox_services", "scheduler", "triggerer"], "triggerer") == \
        "triggerer"


def test_gateway_replicas_that_disagree_are_named_with_the_stale_jwks_when_the_claims_are_right():
    from sandbox.systems.checks import Diagnosis
    from sandbox.systems.tyk.doctor import split_hop

    token = ".".join(base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")
                     for p in ({"alg": "RS256", "kid": "k2"}, {})) + ".sig"
    split = {"gateway-tyk-b": (403, "Key not authorized"), "gateway-tyk-a": (200, "")}
    d = Diagnosis(WANT.conn_id)
    hop = split_hop(d, split, "dev-orders", WANT, token, claims_ok=True)
    assert not hop.ok and "replica gateway-tyk-b refuses it" in hop.detail and "gateway-tyk-a accepts" in hop.detail
    assert "replicas disagree" in d.verdict and "(k2)" in d.verdict and "DELETE /tyk/cache/jwks/dev-orders" in d.verdict
    assert "gateway-tyk-b first" in d.verdict
    d = Diagnosis(WANT.conn_id)
    split_hop(d, {**split, "gateway-tyk-b": (429, "Rate Limit Exceeded")}, "dev-orders", WANT, token, True)
    assert "rate limit" in d.verdict and "on every replica" in d.verdict


def test_a_shared_airflow_container_that_one_service_ended_names_that_service_and_not_the_container():
    """docker: one container (named after the API server) runs the four services; the runtime says which service's
    end stopped it (`ended`) and which are not running (`stopped`), as fields."""
    from sandbox.runtime.base import ComponentStatus, Endpoints
    from sandbox.systems.airflow.doctor import airflow_down

    def diagnose(detail: str, ended: list[str], stopped: list[str]):
        st = ComponentStatus("airflow", "crashed", None, detail, "http://127.0.0.1:9",  # nothing answers there
                             ended=ended, stopped=stopped)
        d, _ = airflow_down(Endpoints({"airflow": st}), lambda _: [])
        return {h.name: (h.ok, h.detail) for h in d.hops}, d.verdict

    hops, verdict = diagnose("container(s) not running: airflow-api-server (airflow-dag-processor exited with -9)",
                             ["airflow-dag-processor"], ["airflow-api-server"])
    assert hops["dag-processor"][0] is False and hops["dag-processor"][1].startswith("its process exited")
    assert hops["api-server"][0] is False and hops["api-server"][1].startswith("stopped with airflow-dag-processor")
    assert hops["scheduler"][0] is None and hops["triggerer"][0] is None  # not checked: nothing answers
    assert "partly down: api-server, dag-processor" in verdict
    # a container of its own per service (local processes, an older docker stack): named as before
    hops, _ = diagnose("container(s) not running: airflow-api-server, airflow-triggerer",
                       ["airflow-api-server", "airflow-triggerer"], ["airflow-api-server", "airflow-triggerer"])
    assert hops["api-server"][1].startswith("its process exited") and hops["triggerer"][0] is False
