"""The docker runtime's shared container: Airflow's four services in one container, from the compose file's own
commands; what state the component is in, with plain listings (no engine)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from sandbox.paths import SandboxPaths
from sandbox.runtime.docker.runtime import UNITS_LABEL, DockerRuntime, units_of
from sandbox.runtime.state import State
from sandbox.systems import all_components

AIRFLOW = ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]


def runtime(tmp_path) -> DockerRuntime:
    return DockerRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"), components=all_components())


def container(status: str = "running", units: list[str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(status=status, attrs={"Labels": {UNITS_LABEL: ",".join(units)} if units else {}})


def test_airflow_starts_as_its_init_and_one_container_that_runs_the_files_four_commands(tmp_path):
    rt = runtime(tmp_path)
    services = rt._services(State(runtime="docker"))
    plan = rt._containers_of("airflow", services)
    assert sorted(plan) == ["airflow-api-server", "airflow-init"]
    svc, units = plan["airflow-api-server"]
    assert units == AIRFLOW
    assert svc.command == ["python", "-m", "sandbox_services", "api-server", "scheduler", "dag-processor",
                           "triggerer"]
    assert json.loads(svc.environment["SANDBOX_SERVICES"]) == [
        ["airflow-api-server", "airflow", ["api-server", "--workers", "1", "--port", "8080"]],
        ["airflow-scheduler", "airflow", ["scheduler", "--skip-serve-logs"]],
        ["airflow-dag-processor", "airflow", ["dag-processor"]],
        ["airflow-triggerer", "sandbox_triggerer", ["--skip-serve-logs"]]]
    # the rest of the api-server's service as the file has it: its port, healthcheck, settings
    assert svc.ports == services["airflow-api-server"].ports and svc.healthcheck
    assert {k: v for k, v in svc.environment.items() if k != "SANDBOX_SERVICES"} == \
        services["airflow-api-server"].environment
    # a component of one service runs as the file says
    assert {s: (v.command, u) for s, (v, u) in rt._containers_of("tyk", services).items()} == {
        "tyk": (services["tyk"].command, ["tyk"])}


def test_state_counts_the_shared_container_and_any_service_restarted_into_its_own(tmp_path):
    rt = runtime(tmp_path)
    shared = {"airflow-api-server": container(units=AIRFLOW)}
    assert rt._expected("airflow", shared) == ["airflow-api-server"]
    # a service leaves it through the launcher the container runs
    assert rt.components["airflow"].release_command("airflow-triggerer") == \
        ["python", "-m", "sandbox_services", "--release", "airflow-triggerer"]
    assert rt._component_state("airflow", shared) == "running"
    assert rt._component_state("airflow", {"airflow-api-server": container("exited", AIRFLOW)}) == "crashed"
    released = {**shared, "airflow-triggerer": container()}
    assert rt._expected("airflow", released) == ["airflow-api-server", "airflow-triggerer"]
    assert rt._component_state("airflow", released) == "running"
    assert rt._component_state("airflow", {**shared, "airflow-triggerer": container("exited")}) == "crashed"
    # a stack of four containers (made before the shared one) is read as it was
    four = {s: container() for s in AIRFLOW}
    assert rt._component_state("airflow", four) == "running"
    assert rt._component_state("airflow", {**four, "airflow-scheduler": container("exited")}) == "crashed"
    assert rt._component_state("airflow", {}) == "stopped"


def test_units_are_read_from_a_listing_or_an_inspect():
    assert units_of(container(units=AIRFLOW)) == AIRFLOW
    assert units_of(SimpleNamespace(attrs={"Config": {"Labels": {UNITS_LABEL: "a,b"}}})) == ["a", "b"]
    assert units_of(container()) == []


def test_a_shared_container_that_exited_names_the_service_that_ended_it():
    from sandbox.runtime.docker.runtime import which_unit_ended

    log = b"... scheduler lines ...\n=== sandbox: airflow-triggerer exited with 1: stopping the others\nmore\n"
    c = SimpleNamespace(status="exited", attrs={"Labels": {UNITS_LABEL: ",".join(AIRFLOW)}}, logs=lambda tail: log)
    assert which_unit_ended(c) == ("airflow-triggerer", "airflow-triggerer exited with 1")
    assert which_unit_ended(SimpleNamespace(attrs={"Labels": {}}, logs=lambda tail: log)) is None


def test_a_service_restarted_again_drops_its_exited_container_of_before(tmp_path, monkeypatch):
    """The triggerer restarted into its own container (a scenario's inject), that container exited, and it is
    restarted again (the revert): its exited container goes first, or the new one's name is taken (409)."""
    rt = runtime(tmp_path)
    calls = []
    host = container(units=AIRFLOW)
    own = container("exited")
    own.remove = lambda force: calls.append("remove own")
    monkeypatch.setattr(rt, "_by_service", lambda: {"airflow-api-server": host, "airflow-triggerer": own})
    monkeypatch.setattr(rt, "_release", lambda h, comp, unit: calls.append(f"release {unit}"))
    monkeypatch.setattr(rt, "_services", lambda state: {"airflow-triggerer": "svc"})
    monkeypatch.setattr(rt, "_start_service", lambda svc, env, say: calls.append(f"start {svc}"))
    rt.replace_unit("airflow", "airflow-triggerer", {}, None, State(runtime="docker"))
    assert calls == ["remove own", "release airflow-triggerer", "start svc"]
