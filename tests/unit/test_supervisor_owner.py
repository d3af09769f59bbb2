"""Which processes are a sandbox's: the environment's mark, or — once a title rewrite wiped the environment —
the working folder inside its home; and which component a process is of."""

from pathlib import Path

from sandbox.host.supervisor import OWNER_VAR, belongs, component_of

HOME = Path("/home/u/.local/share/airflow-tyk-sandbox/default")


def test_the_mark_in_the_environment():
    assert belongs({OWNER_VAR: str(HOME), "PATH": "/bin"}, "/anywhere", HOME)
    assert not belongs({OWNER_VAR: "/other/home", "PATH": "/bin"}, "/anywhere", HOME)


def test_a_wiped_environment_inside_the_home_is_the_sandboxs():
    # an orphaned LocalExecutor worker: its title rewrite left no readable environment
    assert belongs({}, f"{HOME}/data/airflow", HOME)
    assert belongs({"airflow worker -- LocalExecutor: <idle>": ""}, f"{HOME}/data/airflow", HOME)
    assert not belongs({}, "/tmp", HOME)
    assert not belongs({}, f"{HOME}-other/data/airflow", HOME)  # a sibling folder is not inside


def test_a_shell_opened_in_the_home_is_not():
    assert not belongs({"PATH": "/usr/bin", "HOME": "/home/u"}, f"{HOME}/data/airflow", HOME)


def test_the_component_is_the_data_folder_worked_in():
    assert component_of(f"{HOME}/data/keycloak", HOME) == "keycloak"
    assert component_of(f"{HOME}/data/airflow/logs", HOME) == "airflow"
    assert component_of(str(HOME), HOME) is None
    assert component_of(f"{HOME}/data", HOME) is None
    assert component_of("/elsewhere", HOME) is None


def test_without_the_mark_only_a_component_folder_counts():
    assert not belongs({}, str(HOME), HOME)  # `env -i sleep` started in the home itself
    assert not belongs({}, f"{HOME}/dags", HOME)
    assert not belongs({}, f"{HOME}/data", HOME)


def test_homes_others_use_are_refused(tmp_path):
    import pytest

    from sandbox.errors import SandboxError
    from sandbox.paths import check_home

    for shared in (Path("/"), Path.home(), Path("/tmp")):
        with pytest.raises(SandboxError) as e:
            check_home(shared)
        assert e.value.exit_code == 2 and "--home" in e.value.fix
    check_home(tmp_path / "mine")  # a folder of its own (even one that does not exist yet)
    shared = tmp_path / "group"
    shared.mkdir()
    shared.chmod(0o770)  # a umask of 002: `up` takes the group's write off, nothing to refuse
    check_home(shared)
    shared.chmod(0o777)  # anyone could plant files in it
    with pytest.raises(SandboxError, match="not a folder of yours"):
        check_home(shared)
