"""Apply's diffing against live state given as plain data: converged state plans nothing; each drift is one step;
objects without the managed mark are never touched."""

from __future__ import annotations

import json

from sandbox.plan import MANAGED, plan
from sandbox.spec import load
from sandbox.systems.airflow import applier as airflow_apply
from sandbox.systems.keycloak import applier as keycloak_apply
from sandbox.systems.tyk import applier as tyk_apply
from tests.unit.test_plan import INPUTS

DESIRED = plan(load(), INPUTS)


class Answer:
    def __init__(self, body: dict):
        self.body = body

    def raise_for_status(self) -> None:
        pass

    def json(self) -> dict:
        return self.body


class LiveKeycloak:
    """The admin client's read side, over realms given as data."""

    def __init__(self, realms: dict[str, dict]):
        self.realms, self.current = realms, "master"
        self.connection = self  # the client-policy endpoints are read raw

    def raw_get(self, path: str):
        _, _, realm, _, kind = path.split("/")  # admin/realms/<realm>/client-policies/<kind>
        return Answer({kind: self.realms[realm].get(kind, [])})

    def get_realms(self):
        return [{"realm": n} for n in self.realms]

    def get_realm(self, name):
        return self.realms[name]

    def change_current_realm(self, name):
        self.current = name

    def get_client_scopes(self):
        return self.realms[self.current]["scopes"]

    def get_clients(self):
        return self.realms[self.current]["clients"]


def converged_keycloak() -> LiveKeycloak:
    realms = {"master": {"realm": "master", "attributes": {}, "scopes": [], "clients": []}}
    for r in DESIRED.realms:
        realms[r.realm] = {**keycloak_apply.realm_payload(r.realm, r.access_token_lifespan),
                           "scopes": [{"id": f"id-{s.name}", **keycloak_apply.scope_payload(s)}
                                      for s in DESIRED.scopes if s.realm == r.realm],
                           "clients": [{"id": f"id-{c.client_id}", **keycloak_apply.client_payload(c)}
                                       for c in DESIRED.clients if c.realm == r.realm],
                           "profiles": [keycloak_apply.rotation_profile()],
                           "policies": [keycloak_apply.rotation_policy()]}
    return LiveKeycloak(realms)


def changes(steps) -> list[tuple[str, str, str, str]]:
    return [(s.change.action, s.change.kind, s.change.name, s.change.detail) for s in steps]


def test_keycloak_converged_plans_nothing():
    assert keycloak_apply.steps(converged_keycloak(), DESIRED) == []


def test_keycloak_each_drift_is_one_step():
    live = converged_keycloak()
    dev = live.realms["dev"]
    dev["accessTokenLifespan"] = 60
    airflow = next(c for c in dev["clients"] if c["clientId"] == "airflow")
    airflow["attributes"] = {**airflow["attributes"], keycloak_apply.CLIENT_LIFESPAN: "1"}
    airflow["defaultClientScopes"] = [s for s in airflow["defaultClientScopes"] if s != "billing.read"]
    dev["clients"] = [c for c in dev["clients"] if c["clientId"] != "reporting"]
    live.realms["prod"]["policies"] = [{**keycloak_apply.rotation_policy(), "enabled": False}]
    live.realms["old"] = {"realm": "old", "attributes": {MANAGED: "true"}, "scopes": [], "clients": []}
    assert changes(keycloak_apply.steps(live, DESIRED)) == [
        ("delete", "realm", "old", ""),
        ("update", "realm", "dev", "token lifespan 60s -> 300s"),
        ("update", "client", "dev/airflow", "scopes +['billing.read'] -[]; token lifespan override 1s"),
        ("create", "client", "dev/reporting", "scopes orders.export"),
        ("update", "client-policy", "prod/sandbox-secret-rotation",
         "old client secrets stay valid through a rotation's grace"),
    ]


def test_keycloak_leaves_unmarked_objects_alone():
    live = converged_keycloak()
    live.realms["theirs"] = {"realm": "theirs", "attributes": {}, "scopes": [], "clients": []}
    live.realms["dev"]["clients"].append({"id": "x", "clientId": "hand-made", "attributes": {}})
    live.realms["dev"]["scopes"].append({"id": "y", "name": "their.scope", "attributes": {}})
    assert keycloak_apply.steps(live, DESIRED) == []


class LiveAirflow:
    def __init__(self, conns: list[dict]):
        self.conns = conns

    def connections(self):
        return self.conns


def converged_airflow() -> LiveAirflow:
    return LiveAirflow([airflow_apply.connection_body(c) for c in DESIRED.connections])


def test_airflow_converged_plans_nothing_and_drift_is_named():
    assert airflow_apply.steps(converged_airflow(), DESIRED) == []
    live = converged_airflow()
    live.conns[0] = {**live.conns[0], "host": "elsewhere", "login": "someone", "password": "***"}
    gone = live.conns.pop()
    live.conns.append({"connection_id": "tyk_old_svc", "extra": json.dumps({MANAGED: True})})
    live.conns.append({"connection_id": "mine", "extra": "{}"})  # not the sandbox's: left alone
    gone_url = next(c.url for c in DESIRED.connections if c.conn_id == gone["connection_id"])
    assert changes(airflow_apply.steps(live, DESIRED)) == [
        ("update", "connection", live.conns[0]["connection_id"], "host, login, password"),
        ("create", "connection", gone["connection_id"], gone_url),
        ("delete", "connection", "tyk_old_svc", ""),
    ]


def test_airflow_connections_of_the_old_format_are_recognised_and_converted():
    live = LiveAirflow([{"connection_id": c.conn_id, "conn_type": "http", "host": "127.0.0.1", "port": 28082,
                         "schema": "http", "extra": json.dumps({"base_path": f"/{c.env}/{c.service}", MANAGED: True})}
                        for c in DESIRED.connections])
    assert {(a, k, d) for a, k, _, d in changes(airflow_apply.steps(live, DESIRED))} == {
        ("update", "connection", "host, port, schema, description, extra")}


class LiveTyk:
    def __init__(self, apis: dict, policies: dict):
        self._apis, self._policies = apis, policies

    def apis(self):
        return self._apis

    def policies(self):
        return self._policies


def converged_tyk() -> LiveTyk:
    # the gateway adds fields of its own when it stores an object: they must not count as drift
    return LiveTyk({a.api_id: {**tyk_apply.api_payload(a), "servers": [{"url": "/x"}]} for a in DESIRED.apis},
                   {p.policy_id: {**tyk_apply.policy_payload(p), "last_updated": "1"} for p in DESIRED.policies})


def test_tyk_converged_plans_nothing_and_drift_is_named():
    assert tyk_apply.steps(converged_tyk(), DESIRED) == []
    live = converged_tyk()
    live._policies["dev-airflow-billing"]["rate"] = 1
    del live._apis["dev-orders"]
    live._apis["theirs"] = {"x-tyk-api-gateway": {"info": {"id": "theirs"}}}  # no mark: left alone
    live._policies["old"] = {"id": "old", "meta_data": {MANAGED: True}}
    assert changes(tyk_apply.steps(live, DESIRED)) == [
        ("update", "policy", "dev-airflow-billing", "rate"),
        ("delete", "policy", "old", ""),
        ("create", "api", "dev-orders", "/dev/orders/ -> http://127.0.0.1:28083/anything/orders"),
    ]
