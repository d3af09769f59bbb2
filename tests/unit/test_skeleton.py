"""The runtime skeleton's flow (up, restart, status, down's bookkeeping) over a fake runtime: plain data, no process."""

from __future__ import annotations

import pytest

from sandbox.errors import SandboxError
from sandbox.host.readiness import Result
from sandbox.paths import SandboxPaths
from sandbox.runtime import state as statefile
from sandbox.runtime.component import Component, Login
from sandbox.runtime.skeleton import SkeletonRuntime
from sandbox.runtime.state import ProcessRecord, State


class Fake(Component):
    def __init__(self, name: str, port: int, after: tuple[str, ...] = (), login: Login | None = None):
        self.name, self.default_ports, self.after, self.login = name, {name: port}, after, login
        self.start_timeout = 0.3

    def provisioned(self, cache):
        return True

    def provision(self, cache, say):
        return None

    def processes(self, ctx):
        return []

    def health(self, ctx):
        return lambda: Result(self.name in ctx.ports and RUNNING.get(self.name) == "healthy", "not answering")


RUNNING: dict[str, str] = {}  # what the fake world runs: name -> healthy | dead | silent | sealed (alive, unhealthy)


class FakeRuntime(SkeletonRuntime):
    """Each component is one 'process' in RUNNING; `breaks` start but never answer (or die at once)."""

    name = "fake"

    def __init__(self, paths: SandboxPaths, breaks: dict[str, str] | None = None):
        super().__init__(paths, {}, components=[Fake("db", 30001), Fake("api", 30002, after=("db",),
                                                                                login=Login("admin", "api_password"))])
        self.breaks = breaks or {}
        self.calls: list[tuple[str, str]] = []

    def provision(self, only, progress):
        return []

    def log_path(self, component):
        return self.paths.log(component)

    def down(self, force=False, volumes=False):
        state = self._state_for_down(force)
        stopped = [n for n in list(RUNNING) if RUNNING.pop(n) != "dead"]
        self._forget_processes(state)
        return stopped

    def component_state(self, name, state):
        if not state.processes.get(name):
            return "stopped"
        return "running" if RUNNING.get(name) in ("healthy", "sealed") else "crashed"

    def stop_component(self, name, state):
        self.calls.append(("stop", name))
        had = state.processes.pop(name, None)
        RUNNING.pop(name, None)
        return bool(had)

    def clear_for_start(self, name, state, progress):
        crashed = self.stop_component(name, state)
        if crashed:
            progress(name, "crashed; restarting")
        return crashed

    def start_component(self, name, ctx, state, progress):
        self.calls.append(("start", name))
        RUNNING[name] = self.breaks.get(name, "healthy")
        state.processes[name] = [ProcessRecord(name, 1000 + len(self.calls), 1.0, [name])]

    def after_failure(self, name, state):
        self.calls.append(("failed", name))

    def died(self, name, state):
        return lambda: f"process {name} exited" if RUNNING.get(name) == "dead" else None

    def tail(self, name, lines):
        return ["starting", "Error: port 5432 refused", "bye"], f"{name}.log"

    def replace_unit(self, component, process, extra_env, ctx, state):
        if RUNNING.get(component) != "healthy":
            raise SandboxError(f"{component} has no running process {process}.", "run `sandbox up` first.")
        self.calls.append(("replace", f"{process} {sorted(extra_env)}"))
        RUNNING[component] = self.breaks.get(component, "healthy")

    def observe(self):
        return dict(RUNNING)  # one snapshot for every row

    def seen(self, comp, state, ctx, secrets, view):
        st = "disabled" if comp.name in state.disabled else self.component_state(comp.name, state)
        return st, (RUNNING.get(comp.name) == "healthy") if st != "stopped" else None, "", []


@pytest.fixture
def rt(tmp_path):
    RUNNING.clear()
    return FakeRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"))


def actions(results) -> dict[str, str]:
    return {r.name: r.action for r in results}


def test_up_starts_in_dependency_order_then_finds_everything_running(rt):
    assert actions(rt.up([], {}, lambda *_: None)) == {"db": "started", "api": "started"}
    assert [c for c in rt.calls if c[0] == "start"] == [("start", "db"), ("start", "api")]
    assert actions(rt.up([], {}, lambda *_: None)) == {"db": "already-running", "api": "already-running"}
    state = statefile.load(rt.paths.state)
    assert state.runtime == "fake" and state.ports == {"db": 30001, "api": 30002, "ui": 28090}  # and the page's


def test_a_crashed_component_is_stopped_and_restarted_and_a_left_out_one_stopped(rt):
    rt.up([], {}, lambda *_: None)
    RUNNING["db"] = "dead"
    said = []
    got = rt.up(["api"], {}, lambda c, m: said.append((c, m)))
    assert actions(got) == {"api": "stopped", "db": "restarted"} and ("db", "crashed; restarting") in said
    assert "api" not in RUNNING and statefile.load(rt.paths.state).disabled == ["api"]


def test_a_running_but_unhealthy_component_a_restart_heals_is_restarted(rt):
    rt.up([], {}, lambda *_: None)
    rt.components["db"].restart_heals = True
    RUNNING["db"] = "sealed"
    said = []
    assert actions(rt.up([], {}, lambda c, m: said.append((c, m)))) == {"db": "restarted", "api": "already-running"}
    assert ("db", "running but unhealthy (not answering): restarting it") in said and RUNNING["db"] == "healthy"


def test_without_refuses_leaving_out_what_another_needs(rt):
    with pytest.raises(SandboxError, match="api needs db, which --without leaves out"):
        rt.up(["db"], {}, lambda *_: None)


def test_a_component_that_dies_is_named_with_its_logs_cause_and_the_rest_kept(tmp_path):
    RUNNING.clear()
    rt = FakeRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"), breaks={"api": "dead"})
    with pytest.raises(SandboxError) as e:
        rt.up([], {}, lambda *_: None)
    msg = e.value.message
    assert "api did not become healthy: process api exited" in msg and "Error: port 5432 refused" in msg
    assert "api.log" in msg and "db kept running" in e.value.fix
    assert ("failed", "api") in rt.calls and RUNNING["db"] == "healthy"


def test_a_switch_of_runtime_is_refused_while_the_other_one_runs(rt):
    rt.paths.home.mkdir(parents=True)
    statefile.save(rt.paths.state, State(runtime="docker", processes={"db": [ProcessRecord("db", 1, 1.0, [])]}))
    with pytest.raises(SandboxError) as e:
        rt.up([], {}, lambda *_: None)
    assert "runs on the docker runtime" in e.value.message and "sandbox down" in e.value.fix
    statefile.save(rt.paths.state, State(runtime="docker"))  # nothing runs there: the switch is recorded
    rt.up([], {}, lambda *_: None)
    assert statefile.load(rt.paths.state).runtime == "fake"


def test_a_running_port_cannot_change(rt):
    rt.up([], {}, lambda *_: None)
    with pytest.raises(SandboxError, match="db is running on port 30001"):
        rt.up([], {"db": 30011}, lambda *_: None)


def test_restart_replaces_one_process_and_waits_for_health(rt):
    rt.up([], {}, lambda *_: None)
    rt.restart("api", "api-worker", {"EXTRA": "1"})
    assert ("replace", "api-worker ['EXTRA']") in rt.calls
    RUNNING["api"] = "dead"
    with pytest.raises(SandboxError, match="api has no running process api-worker"):
        rt.restart("api", "api-worker", {})
    RUNNING["api"], rt.breaks["api"] = "healthy", "silent"
    with pytest.raises(SandboxError, match="did not become healthy after restarting api-worker"):
        rt.restart("api", "api-worker", {})
    with pytest.raises(SandboxError, match="Unknown component 'web'"):
        rt.restart("web", "x", {})


def test_status_rows_come_from_the_runtime_and_keep_the_secret_out_of_repr(rt):
    rt.up([], {}, lambda *_: None)
    rows = {r.name: r for r in rt.status()}
    assert (rows["db"].state, rows["db"].healthy, rows["db"].url) == ("running", True, "http://127.0.0.1:30001")
    api = rows["api"]
    assert api.username == "admin" and api.runtime == "fake" and api.secret is None  # no such secret generated
    RUNNING["db"] = "dead"
    assert {r.name: r.state for r in rt.status()}["db"] == "crashed"


def test_down_forgets_the_processes_and_a_broken_state_needs_force(rt):
    rt.up([], {}, lambda *_: None)
    assert sorted(rt.down()) == ["api", "db"]
    assert statefile.load(rt.paths.state).processes == {}
    rt.paths.state.write_text("{not json")
    with pytest.raises(SandboxError):
        rt.down()
    rt.down(force=True)
    assert statefile.load(rt.paths.state) is None


def test_first_use_urls_are_each_running_components_paths_under_its_host_url(tmp_path):
    from sandbox.runtime.base import ComponentStatus, Endpoints

    rt = FakeRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"))
    rt.components["api"].first_use = ("/execution/health",)
    rows = [ComponentStatus("db", "running", True, "", "http://127.0.0.1:30001"),
            ComponentStatus("api", "running", True, "", "http://127.0.0.1:30002")]
    assert rt.first_use_urls(Endpoints.of(rows)) == ["http://127.0.0.1:30002/execution/health"]
    rows[1].state = "disabled"  # left out (--without): nothing to ask
    assert rt.first_use_urls(Endpoints.of(rows)) == []
