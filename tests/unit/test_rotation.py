"""The pure parts of `sandbox rotate` and `status --credentials`: what is rotated, which keys sign, how long the
old key must stay, how old a key is."""

from __future__ import annotations

import time

import pytest

from sandbox import rotation
from sandbox.appliers.keycloak import ROTATED_BACKSTOP, SECRET_LIFETIME, rotation_policy, rotation_profile
from sandbox.errors import SandboxError
from sandbox.render import age
from sandbox.spec import load


def test_secret_targets_default_to_every_account_in_every_environment():
    spec = load()
    assert rotation.secret_targets(spec, [], None) == [("dev", "airflow"), ("prod", "airflow"), ("dev", "reporting")]
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
    assert [k["kid"] for k in rotation.signing_keys(keys)] == ["a"]


def test_the_old_key_waits_for_the_longest_lifespan_a_client_override_included():
    realm = {"accessTokenLifespan": 300}
    assert rotation.longest_lifespan(realm, [{"attributes": {}}, {}]) == 300
    assert rotation.longest_lifespan(realm, [{"attributes": {"access.token.lifespan": "900"}}]) == 900
    assert rotation.longest_lifespan(realm, [{"attributes": {"access.token.lifespan": ""}}]) == 300


def test_a_keys_age_comes_from_its_name_and_a_realms_first_key_has_none():
    made = "2026-12-01T10:00:00+00:00"
    from datetime import datetime
    now = datetime.fromisoformat(made).timestamp() + 125
    assert rotation._key_age(f"{rotation.KEY_NAME}20261201T100000Z", now) == 125
    assert rotation._key_age("rsa-generated", now) is None
    assert rotation._key_age(f"{rotation.KEY_NAME}garbage", now) is None


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
