"""Checks every runtime makes before it starts anything: one sentence and the fix, nothing half-started."""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox.errors import SandboxError
from sandbox.host import ports as portcheck
from sandbox.runtime import crash
from sandbox.runtime.base import Progress, UpResult
from sandbox.runtime.component import Component
from sandbox.runtime.scheduler import start_in_order


def check_without(components: dict[str, Component], wanted: list[str], without: list[str]) -> None:
    """A component left out must not be one that a wanted component starts after."""
    for n in wanted:
        missing = [d for d in components[n].after if d in without]
        if missing:
            raise SandboxError(f"{n} needs {missing[0]}, which --without leaves out.",
                               f"also leave out {n}, or keep {missing[0]}.", exit_code=2)


def check_port_changes(components: dict[str, Component], running: set[str], current: dict[str, int],
                       requested: dict[str, int]) -> None:
    """A running component keeps its ports."""
    for name, port in requested.items():
        owner = next((c for c in components.values() if name in c.default_ports), None)
        if owner and owner.name in running and current.get(name) != port:
            raise SandboxError(f"{owner.name} is running on port {current.get(name)}; its port cannot "
                               "change while it runs.", "run `sandbox down` first.", exit_code=2)


def check_ports_free(components: dict[str, Component], to_start: list[str], ports: dict[str, int]) -> None:
    """Every port of what is about to start is free (Airflow itself would not fail on a taken one); the taken ones
    are named all at once, each with who holds it."""
    taken = [(port_name, ports[port_name]) for name in to_start for port_name in components[name].default_ports
             if not portcheck.is_free(ports[port_name])]
    if len(taken) == 1:
        ((port_name, port),) = taken
        raise SandboxError(f"Port {port} ({port_name}) is taken by {portcheck.holder(port)}.",
                           f"stop that process, or give {port_name} another port: "
                           f"sandbox up --port {port_name}=<free port> (or SANDBOX_PORTS).")
    if taken:
        said = "; ".join(f"{port} ({port_name}) by {portcheck.holder(port)}" for port_name, port in taken)
        raise SandboxError(f"{len(taken)} ports are taken: {said}.",
                           "stop what holds them, or move this whole sandbox: sandbox up --port-offset 1000 "
                           "(every port 1000 higher, remembered).")


def start_all(wanted: list[str], after: dict[str, tuple[str, ...]], bring_up: Callable[[str], None],
              results: dict[str, UpResult], progress: Progress) -> dict[str, str]:
    """Start `wanted` in dependency order (`after`: name -> what it waits for) through `bring_up(name)` (which
    records its own result); each failure is recorded in `results` with its reason and how long it took, and
    reported. Returns {name: why}."""
    started_at: dict[str, float] = {}

    def timed(name: str) -> None:
        started_at[name] = time.monotonic()
        bring_up(name)

    failed = start_in_order(wanted, after, timed)
    for name, why in failed.items():
        results[name] = UpResult(name, "failed", time.monotonic() - started_at.get(name, time.monotonic()), why)
        progress(name, f"failed: {why}")
    return failed


def not_healthy(comp: Component, why: str, lines: list[str], where: str, kept: list[str]) -> SandboxError:
    """`up`'s error for a component that did not become healthy: why, and when a process of it exited, the line
    of its log that says why and the component's fix for it; then the log's last lines."""
    line = crash.cause(lines) if "exited" in why else None
    said = f"\n  its log says: {line}" if line else ""
    shown = "\n".join("    " + entry for entry in lines[-15:])
    return SandboxError(
        f"{comp.name} did not become healthy: {why}{said}\n  last lines of {where}:\n{shown}\n",
        (f"{crash.fix_for(line, comp.crash_fixes)}; " if line else "") + f"see `sandbox logs {comp.name}`; "
        + (f"{', '.join(kept)} kept running; " if kept else "") + "`sandbox up` again retries only what is down.")
