import stat

import pytest

from sandbox import state as statefile
from sandbox.errors import SandboxError
from sandbox.secrets import GENERATORS, load_or_create, mask
from sandbox.state import ProcessRecord, State


def test_state_round_trip(tmp_path):
    st = State(ports={"redis": 1}, disabled=["tyk"],
               processes={"redis": [ProcessRecord("redis-server", 42, 1.5, ["redis-server"])]})
    statefile.save(tmp_path, st)
    assert statefile.load(tmp_path) == st
    assert stat.S_IMODE(statefile.state_path(tmp_path).stat().st_mode) == 0o600


def test_missing_state_is_none(tmp_path):
    assert statefile.load(tmp_path) is None


@pytest.mark.parametrize("text", ["{not json", '{"version": 1}', '{"version": 99, "runtime": "local"}', "[]"])
def test_corrupt_state_names_file_and_fix(tmp_path, text):
    statefile.state_path(tmp_path).write_text(text)
    with pytest.raises(SandboxError) as e:
        statefile.load(tmp_path)
    assert f"The sandbox state file {tmp_path / 'state.json'} is corrupt" in e.value.message
    assert "sandbox down --force" in e.value.fix


def test_secrets_generated_once_private_and_distinct(tmp_path):
    first = load_or_create(tmp_path)
    assert set(first) == set(GENERATORS)
    assert load_or_create(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert len(set(first.values())) == len(first)
    assert load_or_create(tmp_path / "other") != first


def test_unreadable_secrets(tmp_path):
    (tmp_path / "secrets.json").write_text("nope")
    with pytest.raises(SandboxError, match="secrets file .* is unreadable"):
        load_or_create(tmp_path)


def test_mask_hides_all_but_two_chars():
    assert mask("supersecret") == "su…******"
    assert "persecret" not in mask("supersecret")
