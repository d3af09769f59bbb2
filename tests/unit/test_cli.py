"""CLI behaviour that needs no running stack."""

import json

import pytest
from click.testing import CliRunner

from sandbox.cli import cli, place_global_options


def run(tmp_path, *args):
    return CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), *args])


def test_versions_json(tmp_path):
    r = run(tmp_path, "versions", "-o", "json")
    assert r.exit_code == 0
    pins = {p["component"]: p["version"] for p in json.loads(r.output)}
    assert pins["airflow"] == "3.3.2" and pins["tyk"] == "v5.14.0" and pins["keycloak"].startswith("26.7.")


def test_logs_unknown_component(tmp_path):
    r = run(tmp_path, "logs", "nope")
    assert r.exit_code == 2
    assert "Unknown component 'nope' for logs." in r.output
    assert "keycloak, redis, tyk, openbao, airflow, upstream" in r.output
    assert "Traceback" not in r.output


def test_status_of_a_new_sandbox(tmp_path):
    r = run(tmp_path, "status", "-o", "json")
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert {row["state"] for row in rows} == {"stopped"}
    # nothing of it runs: no URL is shown as its own (the default ports may be another sandbox's)
    assert {row["url"] for row in rows} == {""} and not any(row["urls"] for row in rows)


def test_corrupt_state_is_one_sentence(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "state.json").write_text("garbage")
    for args in (["status"], ["up"], ["down"]):
        r = run(tmp_path, *args)
        assert r.exit_code == 1, args
        assert "is corrupt" in r.output and "sandbox down --force" in r.output
    r = run(tmp_path, "down", "--force")
    assert r.exit_code == 0
    assert not (tmp_path / "home" / "state.json").exists()


def test_docker_runtime_without_an_engine_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    r = run(tmp_path, "up", "--runtime", "docker", "--no-apply")
    assert r.exit_code == 1
    assert f"No Docker engine answers at unix://{tmp_path}/no-engine.sock" in r.output
    assert "dockerd" in r.output and "--runtime local" in r.output


def test_a_new_sandbox_takes_its_runtime_from_the_environment(tmp_path, monkeypatch):
    from sandbox.paths import SandboxPaths
    from sandbox.stack.factory import choose

    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    # SANDBOX_RUNTIME, as Settings hands it over; --runtime wins
    assert choose(paths, given="docker") == "docker" and choose(paths, "local", given="docker") == "local"
    monkeypatch.setenv("SANDBOX_RUNTIME", "podman")
    r = run(tmp_path, "status")
    assert r.exit_code == 2 and "SANDBOX_RUNTIME=podman is not a runtime" in r.output
    # a sandbox keeps the runtime its state records
    paths.home.mkdir()
    paths.state.write_text(json.dumps({"version": 1, "runtime": "docker", "ports": {}, "processes": {}}))
    assert choose(paths, given="local") == "docker"


def test_without_needs_dependency(tmp_path):
    r = run(tmp_path, "up", "--without", "redis")
    assert r.exit_code == 2 and "tyk needs redis, which --without leaves out." in r.output


def test_bad_port_override(tmp_path):
    r = run(tmp_path, "up", "--port", "keycloak")
    assert r.exit_code == 2 and "is not NAME=PORT" in r.output
    r = run(tmp_path, "up", "--port", "airflow=notaport")
    assert r.exit_code == 2 and "'notaport' is not a port number" in r.output and "airflow=18080" in r.output


def test_data_with_rich_markup_is_printed_as_text_and_csv_cells_cannot_be_formulas(capsys):
    from sandbox.commands import render
    from sandbox.commands.audit import AuditRow as Row
    from sandbox.commands.audit import Tally

    tag = "[/x] [bold]evil"  # any caller of the gateway sets audit tags
    with render.out.capture() as cap:
        render.audit([Row(tag, "=cmd|' /C calc'!A0", "api", 200, 1, 1.0, 2.0, "t0", "t1")], Tally(1, 0, 0))
        render.simple_table("t", ["a"], [[tag]])
    assert "[/x] [bold]evil" in cap.get()
    render.csv_rows([Row("@SUM(1)", "=cmd", "-2+3", 200, 1, 1.0, 2.0, "+x", "ok")], Row)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("'@SUM(1),'=cmd,'-2+3,200,") and "'+x,ok" in lines[1]


def test_settings_are_read_from_the_environment_in_one_place():
    from sandbox.errors import SandboxError
    from sandbox.settings import Settings

    s = Settings.from_environment({"SANDBOX_PORTS": "tyk=1,redis=2", "SANDBOX_WITHOUT": " upstream  airflow ",
                                   "SANDBOX_RUNTIME": " docker "})
    assert (s.ports, s.without, s.runtime) == ({"tyk": 1, "redis": 2}, ("upstream", "airflow"), "docker")
    assert Settings.from_environment({}) == Settings()
    bad = Settings.from_environment({"SANDBOX_PORTS": "tyk"})  # made without complaint; the ports are asked later
    with pytest.raises(SandboxError, match="is not NAME=PORT"):
        _ = bad.ports


def test_without_from_the_environment_is_checked_like_the_option(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_WITHOUT", "postgres")
    r = run(tmp_path, "up", "--no-apply")
    assert r.exit_code == 2 and "Unknown component 'postgres' for --without" in r.output


def test_global_options_are_taken_before_or_after_the_command(tmp_path):
    home = tmp_path / "elsewhere"
    (home).mkdir()
    (home / "state.json").write_text("garbage")  # that home's, and only that home's: a corrupt state
    for args in (["status", "--home", str(home)], [f"--home={home}", "status"], ["-o", "json", "status", "--home",
                                                                                 str(home)]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code != 0 and f"{home}/state.json is corrupt" in " ".join(r.output.split()), (args, r.output)
    r = CliRunner().invoke(cli, ["-o", "json", "versions"])
    assert r.exit_code == 0 and json.loads(r.output)


BAD_INPUTS = [  # (what a user typed, words of the sentence that must say what is wrong, words of the fix)
    (["up", "--runtime", "nosuch"], "'nosuch' is not one of", "use one of: local, docker, kubernetes"),
    (["up", "--port", "airflow=notaport"], "'notaport' is not a port number", "airflow=18080"),
    (["up", "--port", "airflw=18080"], "Unknown port name 'airflw'", "did you mean 'airflow'?"),
    (["token", "airflw"], "No account named 'airflw'", "did you mean 'airflow'?"),
    (["logs", "keycloack"], "Unknown component 'keycloack'", "did you mean 'keycloak'?"),
    (["call", "airflow", "ordres"], "No service named 'ordres'", "did you mean 'orders'?"),
    (["repro", "rotated-secrt"], "No scenario named 'rotated-secrt'", "did you mean 'rotated-secret'?"),
    (["statuss"], "No such command 'statuss'", "`sandbox --help`"),
]


@pytest.mark.parametrize(("args", "said", "fix"), BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_gets_one_sentence_the_fix_and_exit_2(tmp_path, args, said, fix):
    r = run(tmp_path, *args)
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2, r.output
    assert lines[0].startswith("Error: ") and said in lines[0], r.output
    assert len(lines) == 2 and lines[1].startswith("Fix: ") and fix in lines[1], r.output
    assert "Traceback" not in r.output and "Usage:" not in r.output


def _commands(group, path=()):
    import click

    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_commands_help_has_examples_and_each_example_parses(tmp_path, monkeypatch):
    import shlex

    monkeypatch.chdir(tmp_path)  # the files the examples name, where they look for them
    for name in ("my.yaml", "pr.yaml", "main.yaml"):
        (tmp_path / name).write_text("")
    walked = list(_commands(cli))
    assert len(walked) >= 18
    for path, cmd in walked:
        text = cmd.help or ""
        assert "Examples:" in text, " ".join(path)
        examples = [line.strip() for line in text.split("Examples:", 1)[1].splitlines()
                    if line.strip().startswith("sandbox ")]
        assert examples, " ".join(path)
        for example in examples:
            words = ["sandbox", *place_global_options(shlex.split(example.split(" #")[0].split(" > ")[0])[1:])]
            if words[1] == "--home":  # the group's option: parsed by the group
                words = [words[0], *words[3:]]
            assert words[1:1 + len(path)] == list(path), example
            with cmd.make_context(" ".join(words[:1 + len(path)]), words[1 + len(path):]) as ctx:
                assert ctx.params is not None, example


def test_the_commands_that_filter_take_the_same_filters_with_one_meaning():
    helps = {}
    for name in ("smoke", "doctor", "audit", "map"):
        params = {p.name: p for p in cli.commands[name].params}
        for flag in ("env", "service"):
            assert flag in params, (name, flag)
            assert params[flag].default is None, (name, flag)  # a filter: none given, every one
            helps.setdefault(flag, set()).add(params[flag].help)
    assert all(len(h) == 1 for h in helps.values()), helps


def test_compare_of_two_snapshot_files(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = {"snapshot": 1, "taken": "t", "machine": {"runtime": "local"}, "tasks_home": {"netrc": []},
            "doctor": {"tyk_dev_orders": {"ok": True, "hop": None, "verdict": ""}}}
    a.write_text(json.dumps(base))
    b.write_text(json.dumps({**base, "tasks_home": {"netrc": ["gateway"]},
                             "doctor": {"tyk_dev_orders": {"ok": False, "hop": "connection", "verdict": "~/.netrc"}}}))
    r = run(tmp_path, "compare", str(a), str(b), "-o", "json")
    assert r.exit_code == 1, r.output
    (e,) = json.loads(r.output)["explained"]
    assert (e["side"], e["scenario"]) == ("B", "netrc-override")
    r = run(tmp_path, "compare", str(a), str(a))
    assert r.exit_code == 0 and "no difference" in r.output


@pytest.mark.parametrize("content,words", [
    (None, "cannot be read (No such file or directory)"),
    ("{not json", "is not a snapshot: not JSON"),
    ('{"connections": {}}', 'is not a snapshot of this sandbox version (no "snapshot": 1)'),
])
def test_compare_of_what_is_not_a_snapshot_is_one_sentence(tmp_path, content, words):
    f = tmp_path / "x.json"
    if content is not None:
        f.write_text(content)
    r = run(tmp_path, "compare", str(f), str(f))
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output
