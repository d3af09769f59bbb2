"""doctor --caller's judges, from plain data: each hop's words and the verdict that names the fix."""

from __future__ import annotations

import pytest

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


def test_lightweight_access_tokens_are_named_as_the_reason_the_audience_is_missing():
    hop, verdict = dc.judge_token("ci", "dev", 200, {"azp": "ci"}, lightweight=True)
    assert hop.ok is False and "lightweight access tokens" in verdict and "client.use.lightweight" in verdict


def _row(status: int, path: str, account: str = "ci", method: str = "POST") -> dc.audit_inbound.InboundRow:
    return dc.audit_inbound.InboundRow("2026-12-07T22:00:00Z", "dev", account, method, path, status,
                                       "refused" if status >= 400 else "read")


def test_the_callers_refused_calls_since_its_last_accepted_one_are_named_with_the_fix():
    grant = load().inbound_grant("ci")
    other = "/dev/airflow/api/v2/dags/sandbox_smoke_prod/dagRuns"
    hop, verdict = dc.judge_calls("ci", grant, [_row(200, "/dev/airflow/x", method="GET"), _row(403, other)])
    assert hop.ok is False and f"POST {other} (HTTP 403), which its grant does not name" in verdict
    assert "it names sandbox_smoke_dev" in verdict
    # an accepted call after it: history; another caller's refusals are not this one's
    assert dc.judge_calls("ci", grant, [_row(403, other), _row(200, "/dev/airflow/x")])[0].ok
    assert dc.judge_calls("ci", grant, [_row(403, other, account="partner-hook")])[0].ok
    hop, verdict = dc.judge_calls("ci", grant, [_row(429, "/dev/airflow/x")])
    assert hop.ok is False and "past its grant's rate" in verdict
    # an asset refused by the gateway's check of the event's asset: the grant's `assets` say which
    hop, verdict = dc.judge_calls("ci", grant, [_row(403, "/dev/airflow/api/v2/assets/events")])
    assert hop.ok is False and "which its grant does not name" in verdict


@pytest.mark.parametrize("path", ["/api/v2/dags/sandbox_smoke_dev/dagRuns",
                                  "/dev/airflow/api/v2/dags/sandbox_smoke_dev/dagRuns?limit=1"])
def test_a_refused_call_the_grant_names_was_refused_past_the_gateways_checks(path):
    grant = load().inbound_grant("ci")
    hop, verdict = dc.judge_calls("ci", grant, [_row(403, path, method="GET")])
    assert hop.ok is False and "a call its grant names" in hop.detail
    assert verdict.startswith(dc.AFTER_CHECKS) and "which its grant does not name" not in verdict
    assert "`--said`" in verdict and "openid" in verdict


def test_what_a_grant_names_is_matched_as_the_gateway_matches_it():
    grant = load().inbound_grant("ci")
    assert dc.granted(grant, "POST", "/api/v2/dags/sandbox_smoke_dev/dagRuns")
    assert dc.granted(grant, "GET", "/api/v2/dags/sandbox_smoke_dev/dagRuns/manual__2026")
    assert not dc.granted(grant, "DELETE", "/api/v2/dags/sandbox_smoke_dev/dagRuns/manual__2026")
    assert not dc.granted(grant, "GET", "/api/v2/dags/sandbox_smoke_dev/dagRuns/a/b")
    assert not dc.granted(grant, "POST", "/api/v2/dags/sandbox_smoke_prod/dagRuns")


def test_a_refused_exchange_on_the_route_is_left_to_the_exchange_hop():
    hop, verdict = dc.judge_gateway("ci", "/dev/airflow/x", dc.Answer(403, "", "Airflow refused to exchange the "
                                                                               "caller's token (HTTP 403): ..."))
    assert hop.ok is False and verdict is None


def _jwt(claims: dict) -> str:
    import base64
    import json

    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_a_held_airflow_token_is_judged_by_the_keycloak_token_inside_it():
    now = 1_800_000_000
    inner = _jwt({"azp": "ci", "exp": now - 30})  # the caller's Keycloak token, 30 s past its life
    hop, verdict = dc.judge_held("ci", _jwt({"exp": now + 86_000, "access_token": inner}), now)
    assert hop.ok is False and "the Keycloak token inside it expired" in verdict and "30 s ago" in verdict
    assert "expires_in" in verdict  # the fix
    fresh = _jwt({"azp": "ci", "exp": now + 200})
    hop, verdict = dc.judge_held("ci", _jwt({"exp": now + 86_000, "access_token": fresh}), now)
    assert hop.ok and verdict is None and "usable until" in hop.detail
    assert dc.judge_held("ci", _jwt({"exp": now - 1, "access_token": fresh}), now)[0].detail.startswith(
        "Airflow's token expired")
    hop, verdict = dc.judge_held("ci", _jwt({"exp": now + 60, "access_token": _jwt({"azp": "partner-hook"})}), now)
    assert hop.ok is False and "partner-hook's, not ci's" in verdict
    assert dc.judge_held("ci", "not a token", now)[0].detail == "not an Airflow API token"


def test_what_the_caller_was_answered_is_read_in_airflows_words():
    hop, verdict = dc.judge_said("ci", "dev", "HTTP 403 Client credentials authentication failed")
    assert hop.ok is False and "takes client_credentials of its own client only" in verdict and "72205" in verdict
    hop, verdict = dc.judge_said("ci", "dev", '{"detail":"Invalid Keycloak assertion"}')
    assert hop.ok is False and "openid" in verdict
    assert "--token-file" in dc.judge_said("ci", "dev", '403 {"detail":"Forbidden"}')[1]
    hop, verdict = dc.judge_said("ci", "dev", "500 something else")
    assert hop.ok is None and verdict is None


def test_a_walk_that_names_no_cause_still_ends_with_a_verdict():
    from sandbox.systems.checks import Diagnosis, Hop

    failed = Diagnosis("caller ci", [Hop("token", True, "azp ci"), Hop("gateway", False, "HTTP 502 no answer")])
    assert dc.concluded(failed, "ci", None).verdict.startswith("ci's way into Airflow fails at gateway: HTTP 502")
    green = Diagnosis("caller ci", [Hop("token", True, "azp ci")])
    assert dc.concluded(green, "ci", None).verdict == "Every hop of ci's way into Airflow is healthy."
    told = Diagnosis("caller ci", [Hop("token", True, "azp ci"), Hop("said", None, "not words of Airflow")])
    assert "is not words of Airflow or the gateway the sandbox knows" in dc.concluded(told, "ci", "HTTP 418").verdict
    named = Diagnosis("caller ci", [Hop("gateway", False, "x")], "The gateway refused it.")
    assert dc.concluded(named, "ci", None).verdict == "The gateway refused it."
