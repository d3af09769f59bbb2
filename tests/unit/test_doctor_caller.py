"""doctor --caller's judges, from plain data: each hop's words and the verdict that names the fix."""

from __future__ import annotations

from sandbox.commands import doctor_caller as dc
from sandbox.spec import load


def test_a_caller_without_a_grant_is_told_how_to_add_one():
    hop, verdict = dc.judge_grant("reporting", load().inbound_grant("reporting"))
    assert hop.ok is False and "service: airflow" in verdict
    hop, verdict = dc.judge_grant("ci", load().inbound_grant("ci"))
    assert hop.ok and verdict is None and hop.detail == "reaches sandbox_smoke_dev"


def test_a_token_without_airflows_audience_is_named_before_the_gateway():
    hop, verdict = dc.judge_token("ci", "dev", 200, {"azp": "ci", "aud": "account"})
    assert hop.ok is False and "audience" in verdict
    assert dc.judge_token("ci", "dev", 200, {"azp": "ci", "aud": ["airflow-server", "account"]})[0].ok
    assert dc.judge_token("ci", "dev", 401, {})[0].ok is False


def test_the_gateways_own_refusal_is_its_verdict_and_airflows_is_left_to_the_next_hops():
    hop, verdict = dc.judge_gateway("ci", "/dev/airflow/x", dc.Answer(403, "", "Access to this resource has been "
                                                                               "disallowed"))
    assert hop.ok is False and "disallowed" in verdict
    hop, verdict = dc.judge_gateway("ci", "/dev/airflow/x", dc.Answer(403, '{"detail": "Forbidden"}'))
    assert hop.ok is False and verdict is None
    hop, verdict = dc.judge_exchange("ci", dc.Answer(403, '{"detail":"Invalid Keycloak assertion"}'))
    assert hop.ok is False and "jwt_federated_client_ids" in verdict
    assert dc.judge_airflow("ci", "d", dc.Answer(403, ""))[0].ok is False
