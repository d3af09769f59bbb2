import json
import stat

import pytest

from sandbox.errors import SandboxError
from sandbox.host.credentials import GENERATORS, load_or_create, mask
from sandbox.paths import SandboxPaths
from sandbox.runtime import state as statefile
from sandbox.runtime.state import ProcessRecord, State


def paths(tmp_path) -> SandboxPaths:
    return SandboxPaths(tmp_path, tmp_path / "cache")


def test_state_round_trip(tmp_path):
    st = State(ports={"redis": 1}, disabled=["tyk"],
               processes={"redis": [ProcessRecord("redis-server", 42, 1.5, ["redis-server"])]})
    statefile.save(paths(tmp_path).state, st)
    assert statefile.load(paths(tmp_path).state) == st
    assert stat.S_IMODE(paths(tmp_path).state.stat().st_mode) == 0o600


def test_missing_state_is_none(tmp_path):
    assert statefile.load(paths(tmp_path).state) is None


@pytest.mark.parametrize("text", ["{not json", '{"version": 1}', '{"version": 99, "runtime": "local"}', "[]"])
def test_corrupt_state_names_file_and_fix(tmp_path, text):
    paths(tmp_path).state.write_text(text)
    with pytest.raises(SandboxError) as e:
        statefile.load(paths(tmp_path).state)
    assert f"The sandbox state file {tmp_path / 'state.json'} is corrupt" in e.value.message
    assert "sandbox down --force" in e.value.fix


def test_secrets_generated_once_private_and_distinct(tmp_path):
    first = load_or_create(paths(tmp_path).secrets)
    assert set(first) == set(GENERATORS)
    assert load_or_create(paths(tmp_path).secrets) == first
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert len(set(first.values())) == len(first)
    assert load_or_create(paths(tmp_path / "other").secrets) != first


def test_unreadable_secrets(tmp_path):
    (tmp_path / "secrets.json").write_text("nope")
    with pytest.raises(SandboxError, match="secrets file .* is unreadable"):
        load_or_create(paths(tmp_path).secrets)


def test_mask_hides_all_but_two_chars():
    assert mask("supersecret") == "********" and mask("") == ""


def test_a_planted_link_beside_the_secrets_is_not_followed_and_a_foreign_file_is_refused(tmp_path):
    import os

    import pytest

    from sandbox.errors import SandboxError
    from sandbox.host.credentials import load_or_create

    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / "secrets.json.tmp").symlink_to(target)  # the old fixed temporary name, planted
    secrets = load_or_create(tmp_path / "secrets.json")
    assert target.read_text() == "untouched" and secrets
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"
    os.chmod(tmp_path / "secrets.json", 0o660)  # a group's write (a umask of 002): repaired by `up`, not refused
    assert load_or_create(tmp_path / "secrets.json") == secrets
    os.chmod(tmp_path / "secrets.json", 0o666)  # anyone could have written it
    with pytest.raises(SandboxError, match="not a plain file of yours"):
        load_or_create(tmp_path / "secrets.json")


def test_a_folder_handed_to_a_containers_user_keeps_its_files_theirs(tmp_path):
    import os

    from sandbox.host.credentials import write_private
    from sandbox.runtime.docker.runtime import hand_over

    folder = tmp_path / "airflow-lib"
    write_private(folder / "old.py", "x = 1")
    if os.geteuid() != 0:  # only root can give files away; any other user runs Airflow as themselves
        return
    hand_over(folder, 50000, 0)
    assert (folder.stat().st_uid, (folder / "old.py").stat().st_uid) == (50000, 50000)
    write_private(folder / "old.py", "x = 2")  # rewritten (a new file, renamed over)
    write_private(folder / "new.py", "y = 1")
    assert {(p.name, p.stat().st_uid, p.stat().st_gid, stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()} == {
        ("old.py", 50000, 0, 0o600), ("new.py", 50000, 0, 0o600)}
    write_private(tmp_path / "secrets.json", "{}")  # root's own folder: root's file
    assert (tmp_path / "secrets.json").stat().st_uid == 0


def test_a_secret_nothing_reads_any_more_is_forgotten(tmp_path):
    path = paths(tmp_path).secrets
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"airflow_admin_password": "from-an-older-sandbox"}))
    path.chmod(0o600)
    kept = load_or_create(path)
    assert "airflow_admin_password" not in kept and "from-an-older-sandbox" not in path.read_text()
    assert set(kept) == set(GENERATORS)
