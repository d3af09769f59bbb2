"""The smoke follows the spec: one more environment and one more service are covered without a code change."""

from __future__ import annotations

import json

import pytest

from sandbox.spec import fixture_path

SPEC = fixture_path("specs/more.yaml")
pytestmark = [pytest.mark.integration, pytest.mark.sandbox_spec(str(SPEC))]


def test_the_smoke_covers_a_new_environment_and_service(stack):
    p = stack.cli("smoke", "-o", "json", "--spec", str(SPEC), check=False)
    report = json.loads(p.stdout)
    assert p.returncode == 0 and report["ok"], report
    assert {r["connection"] for r in report["rows"]} == {
        f"tyk_{env}_{svc}" for env in ("dev", "prod", "stage") for svc in ("orders", "billing", "shipping")}
    assert set(report["runs"]) == {"sandbox_smoke_dev", "sandbox_smoke_prod", "sandbox_smoke_stage"}


def test_one_environment_or_one_service(stack):
    report = json.loads(stack.cli("smoke", "-o", "json", "--spec", str(SPEC), "--env", "stage",
                                  "--service", "shipping").stdout)
    assert [r["connection"] for r in report["rows"]] == ["tyk_stage_shipping"] and report["ok"]
