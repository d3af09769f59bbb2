"""The pure parts of `sandbox rotate` and `status --credentials`: what is rotated, which keys sign, how long the
old key must stay, how old a key is."""

from __future__ import annotations

import time

import pytest

from sandbox.commands import rotation
from sandbox.commands.render import age
from sandbox.errors import SandboxError
from sandbox.spec import load
from sandbox.systems.keycloak import rotation as keycloak_rotation
from sandbox.systems.keycloak.applier import ROTATED_BACKSTOP, SECRET_LIFETIME, rotation_policy, rotation_profile


def test_secret_targets_default_to_every_account_in_every_environment():
    spec = load()
    assert rotation.secret_targets(spec, [], None) == [("dev", "airflow"), ("prod", "airflow"), ("dev", "reporting"),
                                                       ("dev", "ci"), ("dev", "partner-hook")]
    assert rotation.secret_targets(spec, ["airflow"], "prod") == [("prod", "airflow")]
    assert rotation.realm_targets(spec, None) == ["dev", "prod"] and rotation.realm_targets(spec, "dev") == ["dev"]


@pytest.mark.parametrize("accounts,env,words", [(["nobody"], None, "No account named 'nobody'"),
                                                 ([], "staging", "No environment 'staging'"),
                                                 (["reporting"], "prod", "reporting has no client in 'prod'")])
def test_bad_targets_are_one_sentence_and_exit_2(accounts, env, words):
    with pytest.raises(SandboxError) as e:
        rotation.secret_targets(load(), accounts, env)
    assert words in e.value.message and e.value.exit_code == 2 and e.value.fix


def test_only_active_rs256_signing_keys_are_rotated():
    keys = [{"kid": "a", "algorithm": "RS256", "use": "SIG", "status": "ACTIVE"},
            {"kid": "b", "algorithm": "RS256", "use": "SIG", "status": "PASSIVE"},
            {"kid": "c", "algorithm": "RSA-OAEP", "use": "ENC", "status": "ACTIVE"},
            {"kid": "d", "algorithm": "HS512", "use": "SIG", "status": "ACTIVE"}]
    assert [k["kid"] for k in keycloak_rotation.signing_keys(keys)] == ["a"]


def test_the_old_key_waits_for_the_longest_lifespan_a_client_override_included():
    realm = {"accessTokenLifespan": 300}
    assert keycloak_rotation.longest_lifespan(realm, [{"attributes": {}}, {}]) == 300
    assert keycloak_rotation.longest_lifespan(realm, [{"attributes": {"access.token.lifespan": "900"}}]) == 900
    assert keycloak_rotation.longest_lifespan(realm, [{"attributes": {"access.token.lifespan": ""}}]) == 300
    own = {"clientId": "sandbox", "attributes": {"access.token.lifespan": "3600"}}  # the sandbox's own caller
    assert keycloak_rotation.longest_lifespan(realm, [own], ("sandbox",)) == 300


def test_a_keys_age_comes_from_its_name_and_a_realms_first_key_has_none():
    made = "2026-12-01T10:00:00+00:00"
    from datetime import datetime
    now = datetime.fromisoformat(made).timestamp() + 125
    assert keycloak_rotation.key_age(f"{keycloak_rotation.KEY_NAME}20261201T100000Z", now) == 125
    assert keycloak_rotation.key_age("rsa-generated", now) is None
    assert keycloak_rotation.key_age(f"{keycloak_rotation.KEY_NAME}garbage", now) is None


def test_ages_read_as_people_say_them():
    assert [age(s) for s in (None, 5, 65, 3700, 90000)] == ["unknown", "5s", "1m 5s", "1h 1m", "1d 1h"]


def test_the_rotation_policy_keeps_old_secrets_briefly_and_expires_none_by_surprise():
    config = rotation_profile()["executors"][0]["configuration"]
    assert rotation_profile()["executors"][0]["executor"] == "secret-rotation"
    # Keycloak refuses a rotated period longer than the secret's, and counts seconds in a 32-bit int
    assert int(config["rotated-expiration-period"]) == ROTATED_BACKSTOP <= SECRET_LIFETIME
    assert time.time() + SECRET_LIFETIME < 2**31
    assert rotation.SECRET_GRACE < ROTATED_BACKSTOP
    assert rotation_policy()["profiles"] == [rotation_profile()["name"]]


def _key(kid: str, status: str, priority: int) -> dict:
    return {"kid": kid, "providerId": f"id-{kid}", "status": status, "providerPriority": str(priority),
            "algorithm": "RS256", "use": "SIG"}


NAMES = {"id-first": "rsa-generated", "id-new": "sandbox-rs256-20261207T080000Z"}


def test_one_key_needs_no_settling():
    assert keycloak_rotation.key_settlement([_key("first", "ACTIVE", 100)], NAMES) is None


def test_a_rotation_killed_after_adding_its_passive_key_is_rolled_back():
    first, new = _key("first", "ACTIVE", 100), _key("new", "PASSIVE", 101)
    s = keycloak_rotation.key_settlement([first, new], NAMES)
    assert (s.signing["kid"], [k["kid"] for k in s.unused], s.old) == ("first", ["new"], [])


def test_a_rotation_killed_once_its_new_key_signs_is_finished_the_old_key_removed():
    first, new = _key("first", "PASSIVE", 100), _key("new", "ACTIVE", 101)
    s = keycloak_rotation.key_settlement([first, new], NAMES)
    assert (s.signing["kid"], s.unused, [k["kid"] for k in s.old]) == ("new", [], ["first"])


def test_a_rotation_killed_with_two_keys_signing_keeps_the_higher_priority_one():
    first, new = _key("first", "ACTIVE", 100), _key("new", "ACTIVE", 101)
    s = keycloak_rotation.key_settlement([first, new], NAMES)
    assert (s.signing["kid"], s.unused, [k["kid"] for k in s.old]) == ("new", [], ["first"])


def test_a_second_rotation_says_it_waits_and_waits_for_the_first(tmp_path):
    import threading

    from sandbox.paths import SandboxPaths

    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    said, order = [], []
    first_holds, release = threading.Event(), threading.Event()

    def first():
        with rotation.exclusive(paths, lambda *a: said.append(a)):
            first_holds.set()
            release.wait(10)
            order.append("first ends")

    def second():
        first_holds.wait(10)
        with rotation.exclusive(paths, lambda *a: said.append(a)):
            order.append("second runs")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.01)
    assert said == [("rotate", "another `sandbox rotate` is running: this one waits for it to end")]
    assert order == []
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["first ends", "second runs"]
    # `up` does not wait: it leaves a live rotation alone
    with rotation.exclusive(paths, lambda *a: None):
        holder = threading.Thread(target=lambda: order.append(rotation.settle(None, None, paths, lambda *a: None)))
        (paths.home / "rotation-underway.json").write_text('{"kind": "signing-key", "targets": [["dev"]], '
                                                          '"pid": 1, "started": 0}')
        holder.start()
        holder.join(10)
    assert order[-1] == []
