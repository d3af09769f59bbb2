"""plan(): every spec feature shows up in the desired objects, and nothing else does."""

from sandbox.plan import AUDIENCE, AUDIT_HEADERS, CONNECTION_MARK, Addresses, plan
from sandbox.spec import load, parse
from tests.unit.test_spec import GOOD

INPUTS = Addresses(keycloak_url="http://127.0.0.1:28081", gateway_host="127.0.0.1", gateway_port=28082,
                upstream_url="http://127.0.0.1:28083")


def test_default_spec_counts():
    d = plan(load(), INPUTS)
    assert d.counts() == {"realms": 2, "scopes": 9, "clients": 5, "apis": 5, "policies": 7, "connections": 4,
                          "people": 1}


def test_realms_carry_token_lifespan():
    d = plan(load(), INPUTS)
    assert {(r.realm, r.access_token_lifespan) for r in d.realms} == {("dev", 300), ("prod", 120)}


def test_clients_per_environment_with_their_scopes():
    d = plan(load(), INPUTS)
    clients = {(c.realm, c.client_id): c.scopes for c in d.clients}
    assert clients == {("dev", "airflow"): ("billing.read", "orders.read", "orders.write"),
                       ("dev", "reporting"): ("orders.export",),
                       ("dev", "ci"): ("airflow.ci",),  # its grant into Airflow: the scope its policy maps from
                       ("dev", "partner-hook"): ("airflow.partner-hook",),
                       ("prod", "airflow"): ("billing.read", "orders.read", "orders.write")}
    assert {c.audience for c in d.clients} == {AUDIENCE}
    assert {(c.realm, c.client_id) for c in d.clients if c.airflow_audience} == {("dev", "ci"), ("dev", "partner-hook")}
    # a scope exists in a realm only where a grant uses it
    assert "orders.export" not in {s.name for s in d.scopes if s.realm == "prod"}


def test_apis_route_validate_and_forward():
    d = plan(load(), INPUTS)
    api = next(a for a in d.apis if a.api_id == "prod-orders")
    assert api.listen_path == "/prod/orders/"
    assert api.upstream_url == "http://127.0.0.1:28083/anything/orders"
    assert api.issuer == "http://127.0.0.1:28081/realms/prod"
    assert api.jwks_url == "http://127.0.0.1:28081/realms/prod/protocol/openid-connect/certs"
    assert api.tag_headers == AUDIT_HEADERS == ("X-Airflow-Dag-Id", "X-Airflow-Task-Id", "X-Airflow-Run-Id")
    assert api.scope_policies == (("orders.read", "prod-airflow-orders"), ("orders.write", "prod-airflow-orders"))


def test_policies_carry_rate_quota_and_tags():
    d = plan(load(), INPUTS)
    pol = {p.policy_id: p for p in d.policies}
    assert set(pol) == {"dev-airflow-orders", "dev-airflow-billing", "dev-reporting-orders",
                        "prod-airflow-orders", "prod-airflow-billing", "dev-ci-airflow",
                        "dev-partner-hook-airflow"}
    p = pol["dev-reporting-orders"]
    assert (p.rate, p.per, p.quota_max, p.quota_renewal_rate) == (30, 60, 1000, 3600)
    assert p.api_id == "dev-orders" and p.tags == ("env-dev", "account-reporting", "service-orders")
    b = pol["prod-airflow-billing"]
    assert (b.rate, b.per, b.quota_max, b.quota_renewal_rate) == (20, 1, 5000, 86400)


def test_no_quota_means_unlimited():
    d = plan(parse(GOOD), INPUTS)
    assert (d.policies[0].quota_max, d.policies[0].quota_renewal_rate) == (-1, -1)


def test_connections_follow_the_convention_and_hold_no_secret():
    d = plan(load(), INPUTS)
    conns = {c.conn_id: c for c in d.connections}
    assert set(conns) == {"tyk_dev_orders", "tyk_dev_billing", "tyk_prod_orders", "tyk_prod_billing"}
    c = conns["tyk_prod_billing"]
    assert (c.url, c.path) == ("http://127.0.0.1:28082/prod/billing", "/prod/billing")
    assert c.token_url == "http://127.0.0.1:28081/realms/prod/protocol/openid-connect/token"
    assert c.client_id == "airflow" and c.scope == "billing.read"
    assert c.description.startswith(CONNECTION_MARK)
    assert "bearer token from the sandbox's secrets backend" in c.description
    # how the secrets backend gets a token for it: the route names the secret's Variable, never the secret
    assert c.route() == {"url": c.url, "env": "prod", "service": "billing", "token_url": c.token_url,
                         "client_id": "airflow", "scope": "billing.read", "audience": AUDIENCE,
                         "credential_variable": "sandbox_client_secret_prod_airflow"}


def test_connection_even_without_a_grant():
    spec = parse(GOOD.replace("  orders:\n    routes: [/orders]", "  orders:\n    routes: [/orders]\n  stock: {}"))
    d = plan(spec, INPUTS)
    stock = next(c for c in d.connections if c.service == "stock")
    assert stock.scope == ""  # it exists, and the gateway will refuse it: that is the point
    assert not [p for p in d.policies if p.service == "stock"]


def test_custom_upstream_is_used_as_is():
    custom = "    upstream: https://orders.example/api\n    routes: [/orders]"
    spec = parse(GOOD.replace("    routes: [/orders]", custom))
    assert plan(spec, INPUTS).apis[0].upstream_url == "https://orders.example/api"


def test_plan_is_deterministic():
    assert plan(load(), INPUTS) == plan(load(), INPUTS)


def test_airflow_signs_in_through_its_realm():
    d = plan(load(), INPUTS)
    assert d.sign_in is not None
    assert (d.sign_in.realm, d.sign_in.client_id, d.sign_in.callers) == ("dev", "airflow-server",
                                                                                  ("sandbox", "ci", "partner-hook"))
    assert d.sign_in.handoff() == {"realm": "dev", "client_id": "airflow-server",
                                   "federated_client_ids": ["sandbox", "ci", "partner-hook"]}
    assert [(p.realm, p.name, p.role) for p in d.people] == [("dev", "ada", "Admin")]


INBOUND_SPEC = """
version: 1
environments: {dev: {}, prod: {}}
services: {orders: {}}
accounts:
  airflow: {environments: [dev, prod]}
  ci: {environments: [dev]}
  partner-hook: {environments: [dev, prod]}
grants:
  - {account: airflow, service: orders, scopes: [orders.read]}
  - {account: ci, service: airflow, dags: [sandbox_smoke_dev], rate: 10/min}
  - {account: partner-hook, service: airflow, assets: ["s3://orders/daily"]}
"""


def test_a_grant_into_airflow_is_a_route_in_airflows_realm_with_its_paths():
    d = plan(parse(INBOUND_SPEC), INPUTS)
    apis = {a.api_id: a for a in d.apis}
    assert "dev-airflow" in apis and "prod-airflow" not in apis
    api = apis["dev-airflow"]
    assert (api.listen_path, api.exchange_url) == ("/dev/airflow/", INPUTS.airflow_inner_url)
    assert api.scope_policies == (("airflow.ci", "dev-ci-airflow"),
                                  ("airflow.partner-hook", "dev-partner-hook-airflow"))
    ci = next(p for p in d.policies if p.policy_id == "dev-ci-airflow")
    assert (ci.rate, ci.per) == (10, 60)
    assert ci.allowed == (("/api/v2/dags/sandbox_smoke_dev/dagRuns", ("GET", "POST")),
                          ("/api/v2/dags/sandbox_smoke_dev/dagRuns/{run_id}", ("GET",)))
    assert d.sign_in.callers == ("sandbox", "ci", "partner-hook")
    assert d.sign_in.dag_grants == (("ci", ("sandbox_smoke_dev",)),)
    hook = next(p for p in d.policies if p.policy_id == "dev-partner-hook-airflow")
    assert (hook.allowed, hook.assets) == ((("/api/v2/assets/events", ("POST",)),), ("s3://orders/daily",))
    assert d.sign_in.asset_callers == ("partner-hook",)
    clients = {(c.realm, c.client_id): c for c in d.clients}
    assert clients[("dev", "ci")].airflow_audience == "airflow-server"
    assert clients[("dev", "ci")].scopes == ("airflow.ci",)
    assert clients[("prod", "partner-hook")].airflow_audience == ""  # Airflow trusts dev's realm only
    assert not [s for s in d.scopes if s.realm == "prod" and s.name.startswith("airflow.")]
