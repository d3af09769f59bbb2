"""The trust map's edges and evidence, and its Markdown, CSV and SVG, from plain data."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

from sandbox.commands import map_render, trust_map
from sandbox.plan import Addresses, plan
from sandbox.spec import load, parse
from sandbox.systems.steps import Change

SPEC = load()
NOT_GRANTED = """
version: 1
environments: {dev: {token_lifespan: 60}}
services: {orders: {upstream: bundled}, billing: {upstream: bundled}}
accounts: {airflow: {environments: [dev]}}
grants: [{account: airflow, service: orders, scopes: [orders.read], rate: 5/s}]
airflow: {account: airflow}
"""


def _edges(spec=SPEC):
    return trust_map.edges(spec, plan(spec, Addresses.nowhere()))


def test_every_grant_is_an_edge_with_its_account_scopes_policy_api_and_upstream():
    by = {(e.env, e.account, e.service): e for e in _edges()}
    assert set(by) == {("dev", "airflow", "orders"), ("dev", "airflow", "billing"), ("dev", "reporting", "orders"),
                       ("prod", "airflow", "orders"), ("prod", "airflow", "billing"), ("dev", "ci", "airflow"),
                       ("dev", "partner-hook", "airflow")}
    assert {k for k, e in by.items() if e.direction == "in"} == {("dev", "ci", "airflow"),
                                                               ("dev", "partner-hook", "airflow")}
    e = by["dev", "airflow", "orders"]
    assert (e.connection, e.client, e.realm, e.scopes) == ("tyk_dev_orders", "airflow", "dev",
                                                           ["orders.read", "orders.write"])
    assert (e.policy, e.rate, e.quota, e.api, e.route) == ("dev-airflow-orders", "100/min", "10000/day", "dev-orders",
                                                           "/dev/orders/")
    assert e.upstream.endswith("/anything/orders") and e.token_lifespan_s == 300 and e.issuer.endswith("/realms/dev")
    assert any("vault airflow/variables/sandbox_client_secret_dev_airflow" in w for w in e.secret_lives_in)
    reporting = by["dev", "reporting", "orders"]
    assert reporting.connection is None and reporting.scopes == ["orders.export"] and reporting.quota == "1000/hour"
    assert by["prod", "airflow", "orders"].token_lifespan_s == 120


def test_a_caller_into_airflow_is_an_inbound_edge_to_airflows_api_reaching_its_grants_dags():
    e = next(e for e in _edges() if e.direction == "in")
    assert (e.account, e.route, e.policy, e.rate, e.connection) == ("ci", "/dev/airflow/", "dev-ci-airflow", "30/min",
                                                                    None)
    assert e.reaches == ["dag sandbox_smoke_dev"] and e.upstream.startswith("http") and e.as_dict()["direction"] == "in"


def test_a_connection_without_a_grant_is_an_edge_the_gateway_refuses():
    by = {e.service: e for e in _edges(parse(NOT_GRANTED))}
    assert by["billing"].policy is None and by["billing"].state == "no grant" and by["billing"].quota == "-"
    assert by["orders"].quota == "none" and by["orders"].rate == "5/s"


def test_evidence_marks_only_the_edges_it_is_about():
    es = _edges()
    changes = [Change("tyk", "create", "policy", "dev-airflow-orders"), Change("keycloak", "update", "client",
                                                                             "prod/airflow", "scopes")]
    rows = {"tyk_dev_billing": {"ok": False, "verdict": "gateway: HTTP 403 Key not authorized", "at": 1000.0},
            "tyk_prod_orders": {"ok": True, "verdict": "", "at": 1000.0}}
    calls = [{"api": "dev-billing", "account": "airflow", "dag": "billing_daily", "when": 100.0, "verified": True},
             {"api": "dev-billing", "account": None, "dag": "billing_daily", "when": 160.0, "verified": False},
             {"api": "dev-orders", "account": "reporting", "dag": "export", "when": 5.0}]
    trust_map.mark(es, changes, {"dev/airflow": 42}, rows, calls)
    by = {(e.env, e.account, e.service): e for e in es}
    assert by["dev", "airflow", "orders"].state == "drift" and by["dev", "airflow", "orders"].drift == [
        "tyk: create policy dev-airflow-orders"]
    assert {k for k, e in by.items() if e.drift} == {("dev", "airflow", "orders"), ("prod", "airflow", "orders"),
                                                     ("prod", "airflow", "billing")}
    billing = by["dev", "airflow", "billing"]
    assert billing.state == "failing" and billing.smoke.startswith("failed at gateway: HTTP 403")
    assert billing.dags == [{"dag": "billing_daily", "calls": 2, "last_seen": "1970-01-01T00:02:40+00:00",
                             "unverified": 1}]
    assert billing.secret_age_s == 42 and by["dev", "reporting", "orders"].dags == []  # only DAG calls on Airflow's
    assert by["prod", "airflow", "billing"].smoke == "not run"


def test_the_map_renders_as_markdown_csv_and_an_svg_that_names_every_connection():
    es = _edges()
    trust_map.mark(es, [Change("tyk", "delete", "api", "prod-billing")], {}, {},
                   [{"api": "dev-orders", "account": "airflow", "dag": "orders_hourly", "when": 1.0}])
    m = trust_map.TrustMap("sandbox.yaml", "2026-12-01T00:00:00+00:00", es, {"drift": "compared"})
    md = map_render.markdown(m)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(es) and all(line.count(" | ") == len(map_render.FIELDS) - 1 for line in table[2:])
    assert "## Drift from the spec" in md and "tyk: delete api prod-billing" in md
    parsed = list(csv.DictReader(io.StringIO(map_render.to_csv(m))))
    assert [r["connection"] for r in parsed] == [e.connection or "-" for e in es]
    svg = map_render.svg(m)
    assert svg == map_render.svg(m)  # the same map draws the same bytes
    root = ET.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert all(c in texts for c in ("tyk_dev_orders", "tyk_dev_billing", "tyk_prod_orders", "tyk_prod_billing",
                                    "orders_hourly", "reporting @ dev"))
    assert "into Airflow" in texts and "dag sandbox_smoke_dev" in texts and "asset s3://orders/daily" in texts
    states = {p.get("data-connection"): p.get("data-state") for p in root.iter("{http://www.w3.org/2000/svg}path")}
    assert states["tyk_prod_billing"] == "drift" and states["tyk_dev_orders"] == "unchecked"


def test_what_the_gateway_enforces_reads_back_as_the_plans_grants():
    from sandbox.commands import access
    from sandbox.systems.tyk.applier import api_payload, policy_payload

    desired = plan(SPEC, Addresses.nowhere())
    policies = {p.policy_id: policy_payload(p) for p in desired.policies}
    apis = {a.api_id: api_payload(a) for a in desired.apis}
    unmanaged = {"id": "by-hand", "tags": ["env-dev", "account-x", "service-orders"], "meta_data": {}}
    assert access.of_gateway({**policies, "by-hand": unmanaged}, apis) == access.of_desired(desired)
    g = access.of_desired(desired)["dev", "airflow", "orders"]
    assert (g.scopes, g.rate, g.quota) == (("orders.read", "orders.write"), (100, 60), (10000, 86400))


def test_the_access_diff_names_each_grant_gained_or_lost_and_each_scope_rate_and_quota_change():
    from sandbox.commands import access

    def g(service="orders", scopes=("a",), rate=(10, 1), quota=(-1, -1), account="airflow"):
        return access.Grant("dev", account, service, scopes, rate, quota)

    before = {x.key: x for x in (g(), g("billing"), g(account="reporting"))}
    after = {x.key: x for x in (g(scopes=("a", "b"), rate=(5, 1), quota=(100, 3600)), g("billing", rate=(600, 60)),
                                g("search"))}
    got = [(c.account, c.service, c.change, c.before, c.after) for c in access.diff(before, after)]
    assert got == [("airflow", "billing", "rate changed", "10/s", "600/min"),
                   ("airflow", "orders", "gains scopes", "a", "b added"),
                   ("airflow", "orders", "rate lowered", "10/s", "5/s"),
                   ("airflow", "orders", "quota lowered", "none", "100/hour"),
                   ("airflow", "search", "gains access", "-", "a; rate 10/s; quota none"),
                   ("reporting", "orders", "loses access", "a; rate 10/s; quota none", "-")]
    md = access.markdown(access.diff(before, after), "base", "head")
    assert md.count("\n| dev |") == 6 and "**loses access**" in md
    assert "No access changes" in access.markdown([], "base", "head")
