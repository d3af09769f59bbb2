"""compare's pure logic and the snapshot's normalization, on plain data (the real stack: tests/integration)."""

import copy
from pathlib import Path

import pytest

from sandbox.commands.compare import compare, differences, flatten
from sandbox.commands.snapshot import in_own_terms, without_userinfo
from sandbox.scenarios import known_differences
from sandbox.spec import load
from sandbox.systems.airflow.doctor import proxy_for

HEALTHY = {"ok": True, "hop": None, "verdict": "Every checked hop is healthy."}
BASE = {
    "snapshot": 1, "taken": "2026-12-08T03:00:00Z", "machine": {"runtime": "local", "python": "3.11.7"},
    "versions": {"pinned": {"tyk": "5.14.0"}, "providers": {"apache-airflow-providers-http": "6.0.0"}},
    "processes": {"scheduler": {"proxied": {}, "ca": {}}, "triggerer": {"proxied": {}, "ca": {}}},
    "tasks_home": {"netrc": []},
    "idp": {"dev": {"signing_keys": 1, "token_kid_published": True, "clock_offset_s": 0}},
    "vault": {"runs": True, "airflow_token": "valid", "policies": ["airflow", "default"]},
    "connections": {
        "tyk_dev_orders": {"env": "dev", "defined_in": ["the metastore"], "token": {"iss": "<keycloak>/realms/dev",
                                                                     "aud": ["sandbox-gateway"]},
                           "gateway": {"policy": {"quota_max": 1000, "quota_used_up": False}}},
        "tyk_dev_reporting": {"defined_in": ["the metastore"], "token": {"aud": ["sandbox-gateway"]}},
    },
    "doctor": {"tyk_dev_orders": HEALTHY, "tyk_dev_reporting": HEALTHY},
}


def broken(path: str, value, conn: str = "tyk_dev_orders", hop: str = "gateway", verdict: str = "") -> dict:
    b = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = b
    for p in parents:
        node = node[p]
    node[leaf] = value
    b["taken"] = "2026-12-08T03:05:00Z"
    b["doctor"][conn] = {"ok": False, "hop": hop, "verdict": verdict}
    return b


def test_the_same_facts_taken_twice_are_equal():
    later = {**copy.deepcopy(BASE), "taken": "2026-12-08T04:00:00Z"}
    later["idp"]["dev"]["clock_offset_s"] = 2  # two readings of one clock, a moment apart
    c = compare(BASE, later, [])
    assert c.equal and c.explained == [] and c.failing == {"A": [], "B": []}


def test_differences_follow_the_way_a_call_travels():
    b = broken("vault.airflow_token", "refused: 403 permission denied")
    b["connections"]["tyk_dev_orders"]["defined_in"] = ["the environment of scheduler", "the metastore"]
    b["versions"]["providers"]["apache-airflow-providers-http"] = "5.9.0"
    assert [(d.hop, d.path) for d in differences(BASE, b)] == [
        ("connection", "connections.tyk_dev_orders.defined_in"), ("secret", "vault.airflow_token"),
        ("machine", "versions.providers.apache-airflow-providers-http")]


def test_an_absent_fact_differs_from_a_present_one():
    b = broken("processes.scheduler.proxied", {"idp": "http://127.0.0.1:1"})
    (d,) = differences(BASE, b)
    assert (d.path, d.a, d.b) == ("processes.scheduler.proxied.idp", None, "http://127.0.0.1:1")


# the fault's fact, what doctor says on the failing side, and the scenario compare must name (the catalogue's words)
NAMED = [
    ("processes.scheduler.proxied", {"idp": ["http://127.0.0.1:1"]}, "connection", "HTTP_PROXY on the scheduler",
     "proxy-env"),
    ("tasks_home.netrc", ["gateway"], "connection", "a ~/.netrc entry", "netrc-override"),
    ("connections.tyk_dev_orders.defined_in", ["the environment of scheduler", "the metastore"], "connection",
     "shadowed by the environment variable AIRFLOW_CONN_TYK_DEV_ORDERS", "env-shadowed-connection"),
    ("idp.dev.clock_offset_s", 300, "claims", "iat is 300s in the future", "clock-skew"),
    ("connections.tyk_dev_orders.token.aud", [], "claims", "aud [] lacks 'sandbox-gateway'", "wrong-audience"),
    ("idp.dev.signing_keys", 2, "gateway", "its cached JWKS predates the realm's current key", "signing-key-rotation"),
    ("vault.airflow_token", "refused: 403 permission denied", "secret", "403 permission denied",
     "vault-token-expired"),
    ("connections.tyk_dev_orders.gateway.policy.quota_used_up", True, "gateway",
     "the gateway's quota counter stands at 1250", "stale-quota-after-reseed"),
    ("connections.tyk_dev_orders.token.iss", "<keycloak:inner>/realms/dev", "claims",
     "Keycloak's hostname is not fixed", "container-vs-host-issuer"),
]


@pytest.mark.parametrize("path,value,hop,verdict,name", NAMED, ids=[n[-1] for n in NAMED])
def test_the_catalogue_names_the_difference_that_explains_a_failure(path, value, hop, verdict, name):
    c = compare(BASE, broken(path, value, hop=hop, verdict=verdict), known_differences(load()))
    (e,) = c.explained
    assert (e.side, e.connection, e.scenario) == ("B", "tyk_dev_orders", name)
    assert name in e.sentence and "Fix:" in e.sentence


def test_a_cut_quota_is_the_cut_not_a_stale_counter():
    b = broken("connections.tyk_dev_orders.gateway.policy", {"quota_max": 1, "quota_used_up": True},
               verdict="The gateway does not match the spec: policy dev-airflow-orders differs (quota_max 1000 → 1)")
    (e,) = compare(BASE, b, known_differences(load())).explained
    assert e.scenario == "quota-exhausted"


def test_the_failing_side_may_be_a():
    (e,) = compare(broken("tasks_home.netrc", ["gateway"], hop="connection", verdict="a ~/.netrc entry"), BASE,
                   known_differences(load())).explained
    assert (e.side, e.scenario) == ("A", "netrc-override")


def test_a_difference_doctor_does_not_confirm_names_nothing():
    # a sealed vault (no scenario declares it) leaves no token: the claims differ too, but doctor says "sealed"
    b = broken("vault.airflow_token", "refused: 503 Vault is sealed", hop="secret", verdict="The vault is sealed")
    b["connections"]["tyk_dev_orders"]["token"] = {"error": "no secret"}
    c = compare(BASE, b, known_differences(load()))
    assert c.failing["B"] == ["tyk_dev_orders"] and c.explained == []


def test_a_partly_down_airflows_diagnosis_is_not_explained_by_a_connections_fact():
    b = broken("tasks_home.netrc", ["gateway"], conn="airflow", hop="scheduler", verdict="Airflow's scheduler died")
    assert compare(BASE, b, known_differences(load())).explained == []


def test_another_realms_fact_explains_nothing():
    b = broken("idp.prod", {"signing_keys": 2}, hop="gateway", verdict="its cached JWKS predates the realm's key")
    assert compare(BASE, b, known_differences(load())).explained == []  # tyk_dev_orders is dev's


def test_another_connections_fact_explains_nothing():
    b = broken("connections.tyk_dev_reporting.token.aud", [], conn="tyk_dev_orders", hop="claims")
    assert compare(BASE, b, known_differences(load())).explained == []


def test_a_failure_no_difference_explains_is_listed_unexplained():
    b = copy.deepcopy(BASE)
    b["doctor"]["tyk_dev_orders"] = {"ok": False, "hop": "upstream", "verdict": "The upstream does not answer."}
    c = compare(BASE, b, known_differences(load()))
    assert c.failing["B"] == ["tyk_dev_orders"] and c.explained == []


def test_flatten_keeps_lists_as_leaves_and_an_empty_dict_holds_nothing():
    assert flatten({"a": {"b": [1, 2], "c": {}}, "d": 1}) == {"a.b": [1, 2], "d": 1}


def test_addresses_read_as_the_components_they_are():
    known = {"127.0.0.1:28080": "<keycloak>", "keycloak:8080": "<keycloak>", "127.0.0.1:28082": "<tyk>",
             "/root/.sandbox": "<home>"}
    assert in_own_terms({"iss": "http://127.0.0.1:28080/realms/dev", "x": ["https://keycloak:8080/realms/dev"],
                         "h": "/root/.sandbox/airflow", "n": 3, "other": "http://127.0.0.1:1"}, known) == {
        "iss": "<keycloak>/realms/dev", "x": ["<keycloak>/realms/dev"], "h": "<home>/airflow", "n": 3,
        "other": "http://127.0.0.1:1"}


def test_a_proxy_url_loses_its_credentials():
    assert without_userinfo("http://bob:s3cret@proxy.corp:3128") == "http://proxy.corp:3128"
    assert without_userinfo("http://proxy.corp:3128") == "http://proxy.corp:3128"


@pytest.mark.parametrize("env,proxy", [
    ({"HTTP_PROXY": "http://p:1"}, "http://p:1"),
    ({"http_proxy": "http://low:1", "HTTP_PROXY": "http://up:1"}, "http://low:1"),
    ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost,kc.example"}, None),
    ({"HTTP_PROXY": "http://p:1", "no_proxy": ".example"}, None),
    ({"HTTPS_PROXY": "http://p:1"}, None),  # the URL is http
    ({}, None),
])
def test_which_proxy_a_request_goes_through(env, proxy):
    assert proxy_for("http://kc.example:8080/realms/dev", env) == proxy


def test_a_container_address_is_told_apart_from_the_hosts():
    from sandbox.commands.snapshot import addresses
    from sandbox.paths import SandboxPaths
    from sandbox.runtime.base import ComponentStatus, Endpoints

    kc = ComponentStatus("keycloak", "running", True, "", "http://127.0.0.1:28081",
                         urls={"management": "http://127.0.0.1:28091"}, inner_url="http://keycloak:8080")
    local_tyk = ComponentStatus("tyk", "running", True, "", "http://127.0.0.1:28082")
    known = addresses(Endpoints({"keycloak": kc, "tyk": local_tyk}), SandboxPaths(Path("/h"), Path("/c")))
    assert known == {"/h": "<home>", "127.0.0.1:28081": "<keycloak>", "127.0.0.1:28091": "<keycloak>",
                     "keycloak:8080": "<keycloak:inner>", "127.0.0.1:28082": "<tyk>"}
    assert in_own_terms(["http://keycloak:8080/realms/dev", "http://127.0.0.1:28081/realms/dev"], known) == [
        "<keycloak:inner>/realms/dev", "<keycloak>/realms/dev"]
