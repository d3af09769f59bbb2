"""Rate limits and quotas at the real gateway, on a spec with tiny limits for a fresh account."""

from __future__ import annotations

import json

import pytest

from sandbox.spec import fixture_path

SPEC = fixture_path("specs/limits.yaml")
pytestmark = [pytest.mark.integration, pytest.mark.sandbox_spec(str(SPEC))]


def calls(stack, service: str, n: int) -> list[tuple[int, str | None]]:
    out = []
    for _ in range(n):
        p = stack.cli("call", "probe", service, "-o", "json", "--spec", str(SPEC), check=False)
        body = json.loads(p.stdout)
        out.append((body["status"], body["gateway_error"]))
    return out


def test_over_the_rate_the_gateway_answers_429(stack):
    assert calls(stack, "limited", 4) == [(200, None)] * 3 + [(429, "Rate Limit Exceeded")]


def test_over_the_quota_the_gateway_answers_quota_exceeded(stack):
    # the same identity just used up its rate on `limited`: each grant has counters of its own
    assert calls(stack, "metered", 4) == [(200, None)] * 3 + [(403, "Quota exceeded")]


def test_doctor_names_a_connection_whose_account_has_no_grant(stack):
    p = stack.cli("doctor", "-o", "json", "--connection", "tyk_dev_limited", "--spec", str(SPEC), check=False)
    (d,) = json.loads(p.stdout)
    gateway = next(h for h in d["hops"] if h["name"] == "gateway")
    assert p.returncode == 1 and gateway == {
        "name": "gateway", "ok": False,
        "detail": "GET /dev/limited/: HTTP 403 key not authorized: no matching policy found in scope claim"}
    assert d["verdict"] == (
        "The gateway refuses airflow's token on /dev/limited/ with HTTP 403 \"key not authorized: no matching policy "
        "found in scope claim\": none of the token's scopes is mapped to a policy of this API. Fix: grant the service "
        "to the account in the spec, then `sandbox apply`.")
