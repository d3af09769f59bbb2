"""The start order and the holders' rules, as plain code: injected starts, holder lists as data."""

from __future__ import annotations

import threading

from sandbox.errors import SandboxError
from sandbox.runtime.scheduler import start_in_order
from sandbox.stack.hold import Holders

AFTER = {"tyk": ("redis",), "redis": (), "keycloak": (), "airflow": ()}


def test_a_component_starts_only_after_what_it_comes_after():
    redis_up = threading.Event()
    seen: list[tuple[str, bool]] = []

    def start(name: str) -> None:
        seen.append((name, redis_up.is_set()))
        if name == "redis":
            redis_up.set()

    assert start_in_order(list(AFTER), AFTER, start) == {}
    assert ("tyk", True) in seen and {n for n, _ in seen} == set(AFTER)


def test_a_failed_dependency_keeps_its_dependents_from_starting_and_nothing_is_lost():
    started: list[str] = []

    def start(name: str) -> None:
        if name == "redis":
            raise SandboxError("redis-server exited")
        if name == "airflow":
            raise RuntimeError("boom")
        started.append(name)

    failed = start_in_order(list(AFTER), AFTER, start)
    assert failed == {"redis": "redis-server exited", "tyk": "not started: redis is not healthy.",
                      "airflow": "RuntimeError: boom"}
    assert started == ["keycloak"]


def test_a_dependency_not_being_started_is_not_waited_for():
    # redis already runs (not in this start): tyk starts at once
    assert start_in_order(["tyk"], AFTER, lambda name: None) == {}


def test_holders_the_last_one_out_stops_what_a_holder_started():
    h = Holders().joined(1, started_it=True).joined(2)
    assert h == Holders((1, 2), True)
    assert not h.last_out_stops(1, keep=False)  # 2 still holds it
    assert h.left(1).last_out_stops(2, keep=False)
    assert not h.left(1).last_out_stops(2, keep=True)
    assert h.left(1).left(2) == Holders((), False)


def test_holders_of_a_stack_someone_else_started_never_stop_it():
    h = Holders().joined(1)  # attached to a running `sandbox up`
    assert not h.last_out_stops(1, keep=False)


def test_holders_read_drops_dead_processes_and_their_flag(tmp_path):
    path = tmp_path / "holders.json"
    Holders((10, 11), True).write(path)
    assert Holders.read(path, alive=lambda pid: pid == 11) == Holders((11,), True)
    assert Holders.read(path, alive=lambda pid: False) == Holders((), False)
    path.write_text("garbage")
    assert Holders.read(path) == Holders()


def test_start_all_records_each_failure_with_its_reason():
    from sandbox.errors import SandboxError
    from sandbox.runtime.base import UpResult
    from sandbox.runtime.startup import start_all

    after = {"redis": (), "tyk": ("redis",), "upstream": ()}
    results, said = {}, []

    def bring_up(name):
        if name == "redis":
            raise SandboxError("redis did not answer")
        results[name] = UpResult(name, "started", 0.1)

    failed = start_all(list(after), after, bring_up, results, lambda c, m: said.append((c, m)))
    assert failed == {"redis": "redis did not answer", "tyk": "not started: redis is not healthy."}
    assert {n: r.action for n, r in results.items()} == {"upstream": "started", "redis": "failed", "tyk": "failed"}
    assert ("redis", "failed: redis did not answer") in said


def test_airflow_starts_beside_the_vault_until_its_dag_folder_holds_something(tmp_path):
    """Only user code (from the DAG folder) reads the vault: a new sandbox need not wait for OpenBao."""
    from sandbox.paths import SandboxPaths
    from sandbox.runtime.component import ComponentContext
    from sandbox.systems.airflow.component import Airflow

    ctx = ComponentContext(SandboxPaths(tmp_path / "home", tmp_path / "cache"), {}, {}, runtime="local")
    assert Airflow().start_after(ctx) == ()  # no folder yet
    ctx.handoff.dag_folder.mkdir(parents=True)
    assert Airflow().start_after(ctx) == ()  # an empty one
    (ctx.handoff.dag_folder / "team.py").write_text("")
    assert Airflow().start_after(ctx) == ("openbao",)
