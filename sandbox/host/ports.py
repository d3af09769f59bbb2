"""Ports: which ones a sandbox uses (resolved once, here), and checks before anything starts.

Airflow, for one, does not fail when its port is taken, so every port is checked first.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import psutil

from sandbox.errors import SandboxError, use_one_of
from sandbox.host.supervisor import OWNER_VAR

HOST = "127.0.0.1"


def parse_overrides(text: str) -> dict[str, int]:
    """'keycloak=18080,airflow=18081' (SANDBOX_PORTS, --port) -> {'keycloak': 18080, 'airflow': 18081}."""
    out: dict[str, int] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SandboxError(f"Port override {item!r} is not NAME=PORT.", "write e.g. keycloak=18080.",
                               exit_code=2)
        if not value.strip().isdigit():
            raise SandboxError(f"Port override {item!r}: {value.strip() or 'nothing'!r} is not a port number.",
                               f"write a number from 1 to 65535, e.g. {name.strip()}=18080.", exit_code=2)
        out[name.strip()] = int(value)
    return out


def resolve(defaults: dict[str, int], remembered: dict[str, int], requested: dict[str, int]) -> dict[str, int]:
    """The ports to use: the defaults, then what the sandbox remembers, then what was asked for now."""
    for name, port in requested.items():
        if name not in defaults:
            raise SandboxError(f"Unknown port name {name!r}.", use_one_of(name, defaults), exit_code=2)
        if not 1 <= port <= 65535:
            raise SandboxError(f"Port {port} for {name} is out of range.", "use a port from 1 to 65535.", exit_code=2)
    ports = {**defaults, **remembered, **requested}
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise SandboxError(f"Ports of {seen[port]} and {name} are both {port}.",
                               "give each a port of its own (--port NAME=PORT or SANDBOX_PORTS).")
        seen[port] = name
    return ports


def is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR so a port in TIME_WAIT after `down` counts as free, as it does for the servers.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def holder(port: int) -> str:
    """Who listens on `port`, as `pid 123 (java)`; 'an unknown process' when it cannot be read."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return "an unknown process (run as its owner or root to see it)"
    # a listener first; else whoever has a connection bound to it (an outgoing client's ephemeral port)
    using = sorted((c for c in conns if c.laddr and c.laddr.port == port and c.pid),
                   key=lambda c: c.status != psutil.CONN_LISTEN)
    for c in using:
        try:
            proc = psutil.Process(c.pid)
            name, sandbox = proc.name(), proc.environ().get(OWNER_VAR)
        except psutil.Error:
            name, sandbox = "?", None
        return f"pid {c.pid} ({name})" + ("" if c.status == psutil.CONN_LISTEN else f", a {c.status} connection") \
            + (f" of the sandbox at {sandbox} (`sandbox --home {sandbox} down` stops it)" if sandbox else "")
    return "an unknown process"



def listened_by_sandbox(port: int, home: Path) -> bool:
    """Whether the process listening on `port` is the sandbox's at `home` (its uid, and its mark or — a process
    title rewrite empties the environment — its working folder in a component's data folder)."""
    from sandbox.host.supervisor import is_ours

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return False
    for c in conns:
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
            try:
                return is_ours(psutil.Process(c.pid), home)
            except psutil.Error:
                return False
    return False
