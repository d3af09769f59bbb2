"""Scenarios pick the connection they break from the spec they run against (no literal ids)."""

import dataclasses

import pytest

from sandbox.errors import SandboxError
from sandbox.scenarios import CATALOGUE
from sandbox.scenarios.base import Pick
from sandbox.scenarios.repro import listed as listed_for
from sandbox.spec import load


def test_on_the_bundled_spec_each_scenario_breaks_a_granted_connection():
    spec = load()
    bound = {name: sc.on(spec).connection for name, sc in CATALOGUE.items()}
    assert bound["expired-token"] == "tyk_dev_orders"
    assert bound["cross-environment"] == "tyk_prod_orders" and bound["wrong-audience"] == "tyk_dev_billing"
    assert all(CATALOGUE[n].connection == "" for n in CATALOGUE)  # binding copies: the catalogue stays unbound
    assert "AIRFLOW_CONN_TYK_DEV_ORDERS" in CATALOGUE["env-shadowed-connection"].on(spec).doctor_says


def test_a_spec_without_a_second_environment_says_so():
    spec = load()
    one_env = dataclasses.replace(spec, environments={k: v for k, v in list(spec.environments.items())[:1]})
    assert Pick().choose(one_env).conn_id == "tyk_dev_orders"
    with pytest.raises(SandboxError, match="cross-environment: This scenario needs 2 environments with granted"):
        CATALOGUE["cross-environment"].on(one_env)
    listed = {s.name: s.connection for s in listed_for(one_env)}  # the listing names why, and goes on
    assert listed["cross-environment"].startswith("(none: This scenario needs 2 environments")
    assert listed["expired-token"] == "tyk_dev_orders"


def test_the_ids_a_scenario_uses_come_from_the_connection_it_breaks():
    spec = load()
    rate = CATALOGUE["rate-limited"].on(spec)
    assert rate.policy == "dev-airflow-orders" and rate.doctor_says.endswith("policy dev-airflow-orders differs")
    assert CATALOGUE["issuer-mismatch"].on(spec).doctor_says.endswith("API dev-orders differs")
    kept = CATALOGUE["rate-limited"].on(spec, "tyk_prod_billing")  # a kept fault: bound where it was injected
    assert (kept.connection, kept.policy) == ("tyk_prod_billing", "prod-airflow-billing")
    with pytest.raises(SandboxError, match="kept on tyk_nowhere, which .* no longer has"):
        CATALOGUE["rate-limited"].on(spec, "tyk_nowhere")
