"""Port checks done before anything starts: Airflow, for one, does not fail when its port is taken."""

from __future__ import annotations

import errno
import socket

import psutil

HOST = "127.0.0.1"


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
            name = psutil.Process(c.pid).name()
        except psutil.Error:
            name = "?"
        return f"pid {c.pid} ({name})" + ("" if c.status == psutil.CONN_LISTEN else f", a {c.status} connection")
    return "an unknown process"

