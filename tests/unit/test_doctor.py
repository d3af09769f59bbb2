"""doctor's pure checks, from plain data."""

from sandbox.doctor import check_claims, env_var_name, shadowing
from sandbox.plan import AirflowConnection

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
