"""The Tyk projection of the plan, with plain data: payloads, the subset diff, refusals in Tyk's words."""

from __future__ import annotations

import pytest
import requests

from sandbox.commands.call import hide_token
from sandbox.plan import AUDIT_HEADERS, plan
from sandbox.spec import load
from sandbox.systems.tyk.applier import api_managed, api_payload, differences, policy_managed, policy_payload
from sandbox.systems.tyk.client import gateway_refusal
from sandbox.systems.tyk.doctor import explain_refusal
from tests.unit.test_plan import INPUTS

DESIRED = plan(load(), INPUTS)
API = next(a for a in DESIRED.apis if a.api_id == "dev-orders")
POLICY = next(p for p in DESIRED.policies if p.policy_id == "dev-reporting-orders")


def test_api_payload_routes_and_checks_what_the_spec_says():
    body = api_payload(API)
    tyk = body["x-tyk-api-gateway"]
    assert tyk["info"]["id"] == "dev-orders" and tyk["info"]["state"]["active"] is True
    assert tyk["server"]["listenPath"] == {"value": "/dev/orders/", "strip": True}
    assert tyk["upstream"]["url"] == "http://127.0.0.1:28083/anything/orders"
    jwt = tyk["server"]["authentication"]["securitySchemes"]["keycloak"]
    assert jwt["jwksURIs"][0]["url"] == "http://127.0.0.1:28081/realms/dev/protocol/openid-connect/certs"
    assert jwt["allowedIssuers"] == ["http://127.0.0.1:28081/realms/dev"]
    assert jwt["allowedAudiences"] == ["sandbox-gateway"]
    assert jwt["scopes"]["scopeToPolicyMapping"] == [
        {"scope": "orders.export", "policyId": "dev-reporting-orders"},
        {"scope": "orders.read", "policyId": "dev-airflow-orders"},
        {"scope": "orders.write", "policyId": "dev-airflow-orders"}]
    assert tyk["middleware"]["global"]["trafficLogs"] == {
        "enabled": True, "tagHeaders": ["x-airflow-dag-id", "x-airflow-task-id", "x-airflow-run-id"]}
    assert len(AUDIT_HEADERS) == 3
    assert body["security"] == [{"keycloak": []}] and api_managed(body)


def test_policy_payload_grants_one_api_with_rate_quota_and_tags():
    body = policy_payload(POLICY)
    assert (body["rate"], body["per"], body["quota_max"], body["quota_renewal_rate"]) == (30, 60, 1000, 3600)
    assert list(body["access_rights"]) == ["dev-orders"] and body["org_id"] == ""
    assert body["tags"] == ["env-dev", "account-reporting", "service-orders"] and policy_managed(body)


def test_a_callers_policy_into_airflow_lists_its_paths_and_the_assets_the_exchange_lets_it_post():
    hook = policy_payload(next(p for p in DESIRED.policies if p.policy_id == "dev-partner-hook-airflow"))
    assert hook["access_rights"]["dev-airflow"]["allowed_urls"] == [{"url": "/api/v2/assets/events",
                                                                    "methods": ["POST"]}]
    # every value a string: the policy's meta_data joins the session's, which the JS plugin reads back
    assert hook["meta_data"] == {"sandbox.managed": "true", "airflow_assets": '["s3://orders/daily"]'}
    assert "airflow_assets" not in policy_payload(POLICY)["meta_data"]


def test_differences_compare_only_what_is_wanted():
    want = {"a": 1, "b": {"c": [1, 2], "d": "x"}}
    assert differences(want, {"a": 1.0, "b": {"c": [1, 2], "d": "x", "added": True}, "z": 0}) == []
    assert differences(want, {"a": 2, "b": {"c": [1], "d": "x"}}) == ["a", "b.c"]
    assert differences(want, {"b": None}) == ["a", "b"]
    assert differences([{"k": 1}], [{"k": 1, "extra": 2}]) == []


def test_unmarked_objects_are_not_managed():
    assert not api_managed({"x-tyk-api-gateway": {}}) and not policy_managed({"meta_data": None})


def response(status: int, body: bytes) -> requests.Response:
    r = requests.Response()
    r.status_code, r._content = status, body
    return r


@pytest.mark.parametrize("status, body, words", [
    (403, b'{"error": "Quota exceeded"}', "Quota exceeded"),
    (429, b'{"error": "Rate Limit Exceeded"}', "Rate Limit Exceeded"),
    (404, b'{"error": "x", "detail": "y"}', None),  # an upstream's own error, not the gateway's
    (500, b"<html>", None),
    (200, b'{"error": "fine"}', None),
])
def test_a_gateway_refusal_is_told_from_an_upstream_error(status, body, words):
    assert gateway_refusal(response(status, body)) == words


def test_every_refusal_gets_a_cause_and_a_fix():
    expired = explain_refusal("Key not authorized: token has expired")
    assert expired[0] == "the token had expired when the gateway saw it"
    assert "scopes" in explain_refusal("key not authorized: no matching policy found in scope claim")[0]
    assert explain_refusal("Quota exceeded")[0] == "the policy's quota is used up"
    assert "audience" in explain_refusal("Key not authorized: audience claim is required but not present in token")[0]
    assert "issuer" in explain_refusal("Key not authorized: invalid issuer claim: http://localhost/realms/dev")[0]
    cause, fix = explain_refusal("Key not authorized")
    assert "could not verify the token" in cause and "jwks" in fix.lower()


def test_call_output_hides_the_bearer_an_upstream_echoes():
    assert hide_token('{"Authorization": ["Bearer eyJhbGciOi.x.y"]}', "eyJhbGciOi.x.y") == \
        '{"Authorization": ["Bearer ********"]}'


def test_a_refusal_in_words_with_an_apostrophe_is_read_as_the_gateway_wrote_it():
    # Tyk's error template escapes the message for JavaScript: `\'` is not JSON (seen from the exchange plugin)
    r = response(403, b'{\n    "error": "Airflow refused to exchange the caller\\\'s token (HTTP 403): '
                      b'{\\"detail\\":\\"Invalid Keycloak assertion\\"}"\n}')
    assert gateway_refusal(r) == 'Airflow refused to exchange the caller\'s token (HTTP 403): ' \
                                 '{"detail":"Invalid Keycloak assertion"}'
