"""Checks every runtime makes before it starts anything: one sentence and the fix, nothing half-started."""

from __future__ import annotations

from sandbox import ports as portcheck
from sandbox.errors import SandboxError
from sandbox.runtime.components.base import Component


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
    """Every port of what is about to start is free (Airflow itself would not fail on a taken one)."""
    for name in to_start:
        for port_name in components[name].default_ports:
            port = ports[port_name]
            if not portcheck.is_free(port):
                raise SandboxError(
                    f"Port {port} ({port_name}) is taken by {portcheck.holder(port)}.",
                    f"stop that process, or give {port_name} another port: "
                    f"sandbox up --port {port_name}=<free port> (or SANDBOX_PORTS).",
                )
