"""The code the sandbox puts on Airflow's PYTHONPATH, with plain data (no Airflow needed)."""

from __future__ import annotations

import ast
import json

import pytest

from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.airflow import token_helper as auth
from sandbox.systems.airflow.lib import sandbox_triggerer


def test_the_credential_goes_into_password_and_the_authorization_header():
    out = auth.credentialed({"login": None, "password": None, "extra": None}, lambda: "tok")
    assert out["password"] == "tok" and json.loads(out["extra"]) == {"Authorization": "Bearer tok"}
    kept = auth.credentialed({"login": None, "password": None, "extra": '{"trust_env": false}'}, lambda: "tok")
    assert json.loads(kept["extra"]) == {"trust_env": False, "Authorization": "Bearer tok"}


@pytest.mark.parametrize("fields", [{"login": "airflow", "password": "from-the-ui-form", "extra": None},
                                    {"login": None, "password": "an-api-key", "extra": None}])
def test_a_connection_with_credentials_of_its_own_is_left_as_it_is(fields):
    def no_token():
        raise AssertionError("no token is fetched for a connection that has credentials of its own")

    assert auth.credentialed(fields, no_token) is fields


def test_an_unreadable_extra_becomes_just_the_header():
    assert json.loads(auth.credentialed({"extra": "not json"}, lambda: "t")["extra"]) == {"Authorization": "Bearer t"}


def test_one_helper_per_connection_until_its_route_or_secret_changes():
    route = {"token_url": "http://idp/token", "client_id": "airflow", "scope": "a", "credential_variable": "v"}
    first = auth.helper("c1", route, lambda _k: "s1")
    assert auth.helper("c1", route, lambda _k: "s1") is first
    assert auth.helper("c1", route, lambda _k: "s2") is not first  # a rotated secret: a new token
    assert auth.helper("c1", {**route, "scope": "b"}, lambda _k: "s2").scope == "b"


def test_a_trigger_that_cannot_be_built_becomes_the_error_the_runner_handles():
    class Fine:
        def __init__(self, **kw):
            self.kw = kw

    class Broken:
        def __init__(self, **kw):
            raise ModuleNotFoundError("No module named 'team_auth'")

    assert sandbox_triggerer.guarded(Fine, "x.Fine")(a=1).kw == {"a": 1}
    with pytest.raises(TypeError) as e:
        sandbox_triggerer.guarded(Broken, "x.Broken")()
    assert str(e.value).startswith("the triggerer could not build x.Broken: ModuleNotFoundError: No module named "
                                   "'team_auth'")
    from types import SimpleNamespace

    runner = SimpleNamespace()
    queue = sandbox_triggerer.Remembering([SimpleNamespace(ti=SimpleNamespace(dag_id="d", task_id="t", run_id="r"))],
                                          runner)
    owner = sandbox_triggerer.owner_of(queue.popleft())  # the runner takes the workload, then builds its trigger
    with pytest.raises(TypeError) as e:
        sandbox_triggerer.guarded(Broken, "x.Broken", owner)()
    assert "could not build x.Broken: ModuleNotFoundError: No module named 'team_auth' (for d.t, run r;" \
        in str(e.value) and runner.sandbox_building.ti.task_id == "t"
    class Strict:
        def __init__(self, a):
            pass

    with pytest.raises(TypeError, match="unexpected keyword"):  # a TypeError passes unchanged: Airflow handles it
        sandbox_triggerer.guarded(Strict, "x.Strict")(b=1)


def test_the_lib_folder_holds_code_and_no_secret(tmp_path):
    written = airflow_files.install_lib(tmp_path)
    assert {n for n, _ in written} == {"sandbox_auth.py", "sandbox_secrets.py", "sandbox_triggerer.py",
                                       "sandbox_services.py", "sandbox_pod_policy.py", "airflow_local_settings.py",
                                       "sandbox_forward.py",
                                       "plugins/sandbox_pod_policy_plugin.py"}
    assert airflow_files.install_lib(tmp_path) == []  # unchanged: nothing written
    for f in tmp_path.rglob("*.py"):
        ast.parse(f.read_text())
        assert f.stat().st_mode & 0o077 == 0
    assert airflow_files.BACKEND.split(".")[0] + ".py" in {f.name for f in tmp_path.iterdir()}


def test_a_crash_is_named_by_the_last_error_line_not_the_last_line():
    from sandbox.runtime import crash
    from sandbox.systems.airflow.component import Airflow

    lines = ["\x1b[32m2026 [info     ] Starting the triggerer [uvicorn.error]",
             "Traceback (most recent call last):",
             "ValueError: invalid literal for int() with base 10: 'lots'",
             "airflow.exceptions.AirflowConfigException: Failed to convert value to int. Please check \"capacity\"",
             "2026 [info     ] Exiting gracefully upon receiving signal 15 [uvicorn.error]",
             "BrokenPipeError: [Errno 32] Broken pipe"]  # another process, as it was stopped
    line = crash.cause(lines)
    assert line.startswith("airflow.exceptions.AirflowConfigException: Failed to convert")
    assert "airflow.cfg" in crash.fix_for(line, Airflow.crash_fixes)
    assert crash.cause(["2026 [error    ] Trigger runner process has died! Exiting.", "[info ] bye"]) \
        == "2026 [error    ] Trigger runner process has died! Exiting."
    assert crash.cause(["all is well [uvicorn.error]"]) is None
    assert crash.fix_for("SomethingError: new", Airflow.crash_fixes) == crash.GENERIC_FIX


def test_doctor_finds_what_the_triggerer_cannot_import_and_processes_without_the_backend(tmp_path):
    from sandbox.systems.airflow import doctor

    (tmp_path / "team.py").write_text("import requests\nclass TeamAuth(requests.auth.AuthBase):\n    pass\n"
                                      "class Helper:\n    pass\nclass MyTrigger(BaseTrigger):\n    pass\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    assert doctor.triggerer_cannot_import(tmp_path) == [("team.py", "TeamAuth"), ("team.py", "MyTrigger")]
    environs = {"11 -m sandbox_triggerer": {"AIRFLOW__WORKERS__SECRETS_BACKEND": ""},
                "12 scheduler": {"AIRFLOW__WORKERS__SECRETS_BACKEND": airflow_files.BACKEND},
                "13 api-server": {}}  # a rewritten process title: its environment reads empty, not judged
    assert doctor.without_backend(environs) == ["the triggerer"]
