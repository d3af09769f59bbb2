"""Spec loading and validation: every problem names its YAML path and line."""

import textwrap

import pytest

from sandbox.spec import Rate, SpecError, load, parse

GOOD = """\
version: 1
environments:
  dev:
    token_lifespan: 300
services:
  orders:
    routes: [/orders]
accounts:
  airflow:
    environments: [dev]
grants:
  - account: airflow
    service: orders
    scopes: [orders.read]
    rate: 10/min
"""


def test_default_spec_loads():
    s = load()
    assert set(s.environments) == {"dev", "prod"}
    assert set(s.services) == {"orders", "billing"}
    assert s.airflow_account == "airflow"
    assert s.environments["prod"].token_lifespan == 120
    g = s.grants[0]
    assert (g.account, g.service, g.scopes) == ("airflow", "orders", ("orders.read", "orders.write"))
    assert g.rate == Rate(100, 60) and g.quota == Rate(10000, 86400)
    assert [g.account for g in s.grants_in("prod")] == ["airflow", "airflow"]


def test_minimal_spec_defaults():
    s = parse(GOOD)
    assert s.services["orders"].upstream == "bundled"
    assert s.grants[0].quota is None


def bad(text: str) -> SpecError:
    with pytest.raises(SpecError) as e:
        parse(textwrap.dedent(text), "my.yaml")
    return e.value


# (replacement applied to GOOD, expected first problem)
MALFORMED = [
    (("    token_lifespan: 300", "    token_lifespan: 300\n    colour: blue"),
     "my.yaml, line 5: environments.dev.colour: unknown key 'colour' (known: token_lifespan)"),
    (("    token_lifespan: 300\n", ""),
     "my.yaml, line 3: environments.dev: must be a mapping, not ''"),
    (("    scopes: [orders.read]\n", ""),
     "my.yaml, line 12: grants[0].scopes: missing required key 'scopes'"),
    (("    service: orders", "    service: shipping"),
     "my.yaml, line 13: grants[0].service: no service named 'shipping'"),
    (("    environments: [dev]", "    environments: [dev, qa]"),
     "my.yaml, line 10: accounts.airflow.environments[1]: no environment named 'qa'"),
    (("    rate: 10/min", "    rate: 10 per minute"),
     "my.yaml, line 15: grants[0].rate: '10 per minute' is not a rate; write COUNT/UNIT or COUNT/N UNIT, e.g. "
     "100/min, 5000/day, 10/30s (units: s, sec, second, min, minute, h, hour, d, day, week)"),
    (("    rate: 10/min", "    rate: 0/min"),
     "my.yaml, line 15: grants[0].rate: '0/min' allows nothing; use a count and period above zero"),
    (("    token_lifespan: 300", "    token_lifespan: soon"),
     "my.yaml, line 4: environments.dev.token_lifespan: must be a whole number, not 'soon'"),
    (("    token_lifespan: 300", "    token_lifespan: 5"),
     "my.yaml, line 4: environments.dev.token_lifespan: 5 is out of range (10 to 86400 seconds)"),
    (("  orders:\n    routes: [/orders]", "  orders:\n    routes: [/orders]\n  orders:\n    routes: [/x]"),
     "my.yaml, line 8: services.orders: duplicate name 'orders'"),
    (("    routes: [/orders]", "    routes: [orders]"),
     "my.yaml, line 7: services.orders.routes[0]: 'orders' must start with '/'"),
    (("  airflow:\n    environments", "  Air_Flow:\n    environments"),
     "my.yaml, line 9: accounts.Air_Flow: 'Air_Flow' is not a valid name (lowercase letters, digits and '-', "
     "starting with a letter, at most 31 characters)"),
    (("    scopes: [orders.read]", "    scopes: [orders read]"),
     "my.yaml, line 14: grants[0].scopes[0]: 'orders read' is not a valid scope name"),
    (("version: 1", "version: 1\nextras: {}"),
     "my.yaml, line 2: extras: unknown key 'extras' (known: accounts, airflow, environments, grants, services, "
     "version)"),
    (("    routes: [/orders]", "    upstream: ftp://x\n    routes: [/orders]"),
     "my.yaml, line 7: services.orders.upstream: 'ftp://x' is neither 'bundled' nor an http(s) URL"),
    (("    rate: 10/min", "    rate: 10/min\n  - account: airflow\n    service: orders\n    scopes: [a]\n"
                        "    rate: 1/s"),
     "my.yaml, line 16: grants[1]: airflow is already granted orders in grants[0]"),
    (("environments:\n  dev:", "environments:\n  dev: [\n"),
     "my.yaml, line 6: (document): not valid YAML: expected ',' or ']', but got ':'"),
]


@pytest.mark.parametrize("change,expected", MALFORMED, ids=[m[1].split(": ")[1] for m in MALFORMED])
def test_malformed_spec_names_path_and_line(change, expected):
    old, new = change
    assert old in GOOD
    err = bad(GOOD.replace(old, new, 1))
    assert err.message.split("\n")[0] == expected
    assert err.exit_code == 2 and "nothing was applied" in err.fix


def test_all_problems_are_listed():
    err = bad(GOOD.replace("service: orders", "service: nope").replace("rate: 10/min", "rate: lots"))
    assert len(err.problems) == 2
    assert [p.line for p in err.problems] == [13, 15]


def test_empty_and_unreadable(tmp_path):
    assert bad("").message == "my.yaml, line 1: (document): the spec is empty"
    from sandbox.errors import SandboxError

    with pytest.raises(SandboxError, match="cannot be read"):
        load(tmp_path / "missing.yaml")


def test_airflow_account_must_exist():
    err = bad(GOOD + "airflow:\n  account: robot\n")
    assert err.message == "my.yaml, line 17: airflow.account: no account named 'robot'"


def test_a_scope_belongs_to_one_account_per_service():
    accounts = "  airflow:\n    environments: [dev]\n  bi:\n    environments: [dev]"
    grant = "  - account: bi\n    service: orders\n    scopes: [orders.read]\n    rate: 1/s\n"
    two = GOOD.replace("  airflow:\n    environments: [dev]", accounts) + grant
    err = bad(two)
    assert err.message == ("my.yaml, line 20: grants[1].scopes[0]: scope 'orders.read' of orders is already granted "
                           "to airflow in grants[0]; the gateway maps a scope to one policy, so give each account "
                           "its own")


def test_a_scope_may_repeat_across_environments():
    accounts = "  airflow:\n    environments: [dev]\n  bi:\n    environments: [prod]"
    envs = "environments:\n  dev:\n    token_lifespan: 300\n  prod:\n    token_lifespan: 300"
    grant = "  - account: bi\n    service: orders\n    scopes: [orders.read]\n    rate: 1/s\n"
    text = GOOD.replace("  airflow:\n    environments: [dev]", accounts).replace(
        "environments:\n  dev:\n    token_lifespan: 300", envs) + grant
    s = parse(text)
    assert [g.account for g in s.grants_in("prod")] == ["bi"]
