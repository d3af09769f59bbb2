"""Spec loading and validation: every problem names its YAML path and line."""

import textwrap

import pytest

from sandbox.spec import DEFAULT_QUOTA, DEFAULT_RATE, DEFAULT_TOKEN_LIFESPAN, SPEC_FIX, Rate, SpecError, load, parse

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
     "my.yaml, line 2: extras: unknown key 'extras' (known: accounts, airflow, environments, grants, people, "
     "services, version)"),
    (("    routes: [/orders]", "    upstream: ftp://x\n    routes: [/orders]"),
     "my.yaml, line 7: services.orders.upstream: 'ftp://x' is neither 'bundled' nor an http(s) URL"),
    (("    rate: 10/min", "    rate: 10/min\n  - account: airflow\n    service: orders\n    scopes: [a]\n"
                        "    rate: 1/s"),
     "my.yaml, line 16: grants[1]: airflow is already granted orders in grants[0]"),
    (("  airflow:\n    environments", '  "airflow\\n":\n    environments'),
     "my.yaml, line 9: accounts.airflow\\n: 'airflow\\n' is not a valid name (lowercase letters, digits and '-', "
     "starting with a letter, at most 31 characters)"),
    (("    routes: [/orders]", "    upstream: \"http://x y/\"\n    routes: [/orders]"),
     "my.yaml, line 7: services.orders.upstream: 'http://x y/' is neither 'bundled' nor an http(s) URL"),
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


# --- a spec that is not UTF-8 -------------------------------------------------------------------------------------

NOT_UTF8_FIX = "save the spec as UTF-8 (your editor's encoding setting, or iconv -t UTF-8); nothing was applied."


def test_a_spec_that_is_not_utf8_names_file_line_and_fix(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"environments:\n  d\xe9v: {}\n")  # 'dév' saved as Latin-1
    with pytest.raises(SpecError) as e:
        load(latin1)
    err = e.value
    assert err.message == f"{latin1}, line 2: (document): not UTF-8: byte 0xe9 in column 4 cannot be decoded"
    assert err.fix == NOT_UTF8_FIX
    assert err.exit_code == 2
    assert [(p.path, p.line) for p in err.problems] == [("(document)", 2)]
    assert isinstance(err.__cause__, UnicodeDecodeError)


def test_not_utf8_line_counts_the_whole_file(tmp_path):
    # Far past the first 8 KiB a text reader decodes at once, after CRLF lines and multi-byte UTF-8 characters.
    text = "# é\r\n" * 3000 + "version: 1\r\n"
    f = tmp_path / "long.yaml"
    f.write_bytes(text.encode() + b"environments:\n  \xff: {}\n")
    with pytest.raises(SpecError) as e:
        load(f)
    assert e.value.message == f"{f}, line 3003: (document): not UTF-8: byte 0xff in column 3 cannot be decoded"


def test_utf8_specs_read_as_before(tmp_path):
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(GOOD.replace("\n", "\r\n").encode())
    assert load(crlf).grants == parse(GOOD).grants
    accented = tmp_path / "accented.yaml"
    accented.write_text(GOOD.replace("  airflow:\n", "  airflow:\n    description: Zoë's DAGs\n"), encoding="utf-8")
    assert load(accented).accounts["airflow"].description == "Zoë's DAGs"


# --- defaults -------------------------------------------------------------------------------------------------------

MINIMAL = """\
version: 1
environments:
  dev: {}
services:
  orders: {}
accounts:
  airflow: {environments: [dev]}
grants:
  - {account: airflow, service: orders, scopes: [orders.read]}
"""


def test_default_constants():
    assert DEFAULT_TOKEN_LIFESPAN == 300
    assert DEFAULT_RATE == "100/min"
    assert DEFAULT_QUOTA is None


def test_a_minimal_spec_takes_the_documented_defaults():
    s = parse(MINIMAL)
    assert s.environments["dev"].token_lifespan == 300
    g = s.grants[0]
    assert g.rate == Rate(100, 60)
    assert g.quota is None  # unlimited


def test_written_values_override_the_defaults():
    s = parse(MINIMAL.replace("dev: {}", "dev: {token_lifespan: 60}").replace(
        "scopes: [orders.read]}", "scopes: [orders.read], rate: 5/s, quota: 10/day}"))
    assert s.environments["dev"].token_lifespan == 60
    assert (s.grants[0].rate, s.grants[0].quota) == (Rate(5, 1), Rate(10, 86400))


def test_optional_keys_are_still_checked():
    # Leaving a key out takes the default; writing it empty is still a mistake, as before.
    assert bad(MINIMAL.replace("dev: {}", "dev:")).message == (
        "my.yaml, line 3: environments.dev: must be a mapping, not ''")
    assert bad(MINIMAL.replace("scopes: [orders.read]}", "scopes: [orders.read], rate: }")).message == (
        "my.yaml, line 9: grants[0].rate: '' is not a rate; write COUNT/UNIT or COUNT/N UNIT, e.g. 100/min, "
        "5000/day, 10/30s (units: s, sec, second, min, minute, h, hour, d, day, week)")
    assert bad(MINIMAL.replace("dev: {}", "dev: {ttl: 5}")).message == (
        "my.yaml, line 3: environments.dev.ttl: unknown key 'ttl' (known: token_lifespan)")
    assert bad(MINIMAL.replace("scopes: [orders.read]}", "scopes: [orders.read], burst: 5}")).message == (
        "my.yaml, line 9: grants[0].burst: unknown key 'burst' (known: account, quota, rate, scopes, service)")


# --- line order -----------------------------------------------------------------------------------------------------

def test_problems_are_listed_in_line_order():
    # Checked environments first, grants last; listed as they stand in the file, ties in checking order.
    text = """\
    grants:
      - {account: nobody, service: shipping, scopes: [a]}
    version: 1
    environments:
      dev: {token_lifespan: 5}
    services:
      orders: {}
    accounts:
      airflow: {environments: [dev]}
    """
    err = bad(text)
    assert err.message == ("my.yaml, line 2: grants[0].account: no account named 'nobody'\n"
                           "  line 2: grants[0].service: no service named 'shipping'\n"
                           "  line 5: environments.dev.token_lifespan: 5 is out of range (10 to 86400 seconds)")
    assert [p.line for p in err.problems] == [2, 2, 5]
    assert err.fix == SPEC_FIX


def test_a_document_wide_problem_on_line_1_comes_first():
    # The missing 'airflow' account is reported on the document (line 1) though it is found last.
    err = bad(GOOD.replace("  airflow:\n    environments: [dev]", "  bi:\n    environments: [qa]").replace(
        "account: airflow", "account: bi"))
    assert err.message == ("my.yaml, line 1: airflow: no 'airflow' section and no account named 'airflow' for "
                           "Airflow's connections\n"
                           "  line 10: accounts.bi.environments[0]: no environment named 'qa'")


def test_a_command_uses_the_spec_given_else_the_one_up_recorded_else_the_bundled_one(tmp_path):
    from sandbox.spec import chosen, default_spec_path, remember

    record = tmp_path / "home" / "spec.json"
    assert (chosen(record, None).path, chosen(record, None).note) == (default_spec_path(), "")
    mine, other = tmp_path / "mine.yaml", tmp_path / "other.yaml"
    remember(record, mine)
    assert (chosen(record, None).path, chosen(record, None).note) == (mine.resolve(), "")
    given = chosen(record, other)
    assert given.path == other.resolve() and f"not {mine.resolve()}, which this sandbox runs" in given.note
    assert chosen(record, mine).note == ""  # the one it runs: nothing to say
    record.write_text("not json")
    assert chosen(record, None).path == default_spec_path()


def test_airflow_trusts_the_first_environment_unless_told():
    base = ("version: 1\nenvironments: {dev: {}, prod: {}}\nservices: {orders: {}}\n"
            "accounts: {airflow: {environments: [dev, prod]}}\ngrants: []\n")
    assert parse(base).airflow_realm == "dev"
    assert parse(base + "airflow: {account: airflow, environment: prod}\n").airflow_realm == "prod"
    with pytest.raises(SpecError, match=r"line 6: airflow.environment: no environment named 'stage'"):
        parse(base + "airflow: {account: airflow, environment: stage}\n")


def test_people_sign_in_with_one_of_airflows_roles():
    base = ("version: 1\nenvironments: {dev: {}}\nservices: {orders: {}}\n"
            "accounts: {airflow: {environments: [dev]}}\ngrants: []\n")
    spec = parse(base + "people:\n  alice: {role: Admin}\n  bob: {}\n")
    assert [(p.name, p.role) for p in spec.people.values()] == [("alice", "Admin"), ("bob", "Viewer")]
    assert parse(base).people == {}
    with pytest.raises(SpecError) as e:
        parse(base + "people:\n  alice: {role: Owner}\n  service-account-x: {}\n")
    assert "line 7: people.alice.role: 'Owner' is not one of Airflow's roles (Viewer, User, Op, Admin)" in str(e.value)
    assert "line 8: people.service-account-x: 'service-account-x' is the name Keycloak gives" in str(e.value)


INBOUND = ("version: 1\nenvironments: {dev: {}, prod: {}}\nservices: {orders: {}}\n"
           "accounts:\n  airflow: {environments: [dev, prod]}\n  ci: {environments: [dev]}\n"
           "  partner-hook: {environments: [dev, prod]}\n")


def test_a_grant_on_airflow_names_dags_and_assets_not_scopes():
    spec = parse(INBOUND + "grants:\n"
                 "  - {account: ci, service: airflow, dags: [sandbox_smoke_dev], rate: 10/min}\n"
                 "  - {account: partner-hook, service: airflow, assets: ['s3://orders/daily']}\n")
    ci, hook = spec.grants
    assert (ci.inbound, ci.dags, ci.assets, ci.scopes, ci.rate.count) == (True, ("sandbox_smoke_dev",), (),
                                                                          ("airflow.ci",), 10)
    assert (hook.dags, hook.assets, hook.scopes) == ((), ("s3://orders/daily",), ("airflow.partner-hook",))


@pytest.mark.parametrize("grant, said", [
    ("{account: ci, service: airflow}", "line 9: grants[0]: a grant on Airflow's API names what the account may do"),
    ("{account: ci, service: airflow, dags: ['no/slash']}", "line 9: grants[0].dags[0]: 'no/slash' is not a DAG id"),
    ("{account: ci, service: airflow, assets: [daily]}", "line 9: grants[0].assets[0]: 'daily' is not an asset URI"),
    ("{account: ci, service: orders, dags: [x], scopes: [a]}", "line 9: grants[0].dags: unknown key 'dags'"),
    ("{account: ci, service: airflow, dags: [x], scopes: [a]}", "line 9: grants[0].scopes: unknown key 'scopes'"),
])
def test_a_grant_on_airflow_is_checked_as_such(grant, said):
    with pytest.raises(SpecError) as e:
        parse(INBOUND + f"grants:\n  - {grant}\n")
    assert said in str(e.value), str(e.value)


def test_airflows_api_is_served_in_airflows_environment_only():
    with pytest.raises(SpecError) as e:
        parse(INBOUND.replace("ci: {environments: [dev]}", "ci: {environments: [prod]}")
              + "grants:\n  - {account: ci, service: airflow, dags: [x]}\n")
    assert ("line 9: grants[0].account: Airflow's API is served in dev only (its auth manager trusts that realm): "
            "add dev to accounts.ci.environments") in str(e.value)
    with pytest.raises(SpecError, match="'airflow' is reserved: Airflow's own API"):
        parse(INBOUND.replace("services: {orders: {}}", "services: {airflow: {}}") + "grants: []\n")
