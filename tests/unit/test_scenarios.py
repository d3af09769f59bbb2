"""Scenarios pick the connection they break from the spec they run against (no literal ids)."""

import dataclasses

import pytest

from sandbox.errors import SandboxError
from sandbox.scenarios import CATALOGUE
from sandbox.scenarios.base import Pick
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
    assert Pick().choose(one_env) == "tyk_dev_orders"
    with pytest.raises(SandboxError, match="needs 2 environments with granted connections"):
        CATALOGUE["cross-environment"].on(one_env)
