"""apply's live steps: Keycloak's beside the others, and what is told when either side fails."""

from __future__ import annotations

import threading

import pytest

from sandbox.errors import SandboxError
from sandbox.reconcile import run_live_steps
from sandbox.systems.steps import Change, Step


def step(system: str, log: list[str], fail: bool = False, wait: threading.Event | None = None) -> Step:
    def run() -> None:
        if wait is not None:
            assert wait.wait(5)
        if fail:
            raise RuntimeError(f"{system} said no")
        log.append(system)
    return Step(Change(system, "create", "realm" if system == "keycloak" else "api", system), run)


def test_both_sides_run_and_settle_comes_after_both() -> None:
    log: list[str] = []
    slow_realm = threading.Event()

    def reload() -> None:
        log.append("reload")
        slow_realm.set()  # Keycloak's step finishes only after the reload: they ran side by side

    settled: list[bool] = []
    run_live_steps([step("keycloak", log, wait=slow_realm), step("tyk", log)], reload,
                   lambda quiet: settled.append(quiet) or log.append("settle"))
    assert log == ["tyk", "reload", "keycloak", "settle"]
    assert settled == [False]


def test_keycloak_failure_is_told_first_and_the_other_is_chained() -> None:
    log: list[str] = []
    with pytest.raises(SandboxError, match="keycloak: create realm keycloak failed: keycloak said no") as e:
        run_live_steps([step("keycloak", log, fail=True), step("tyk", log, fail=True)], lambda: None,
                       lambda quiet: log.append("settle"))
    assert "tyk said no" in str(e.value.__context__)
    assert log == []  # no reload happened, so nothing to settle


def test_after_a_reload_the_caches_go_even_when_keycloak_failed() -> None:
    log: list[str] = []
    settled: list[bool] = []
    with pytest.raises(SandboxError, match="keycloak said no"):
        run_live_steps([step("keycloak", log, fail=True), step("tyk", log)], lambda: log.append("reload"),
                       settled.append)
    assert log == ["tyk", "reload"]
    assert settled == [True]  # quiet: an error there must not hide Keycloak's


def test_the_other_sides_failure_alone_is_told() -> None:
    log: list[str] = []
    with pytest.raises(SandboxError, match="tyk: create api tyk failed"):
        run_live_steps([step("keycloak", log), step("tyk", log, fail=True)], lambda: log.append("reload"),
                       lambda quiet: log.append("settle"))
    assert log == ["keycloak"]  # Keycloak's side finished; no reload, no settle


def test_without_a_gateway_nothing_is_reloaded_or_settled() -> None:
    log: list[str] = []
    run_live_steps([step("keycloak", log), step("airflow", log)], None, lambda quiet: log.append("settle"))
    assert sorted(log) == ["airflow", "keycloak"]
