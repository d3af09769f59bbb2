"""Readiness as small composable values: a Check answers (ok, detail) and never raises.

Shape borrowed from testcontainers' wait strategies: each check is tiny, and `wait_for` is the one loop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str


Check = Callable[[], Result]


def http_ok(url: str, predicate: Callable[[requests.Response], str | None] | None = None,
            timeout: float = 2.0) -> Check:
    """GET `url`; ok on 2xx when `predicate` (returning a complaint or None) has no complaint."""

    def check() -> Result:
        try:
            r = requests.get(url, timeout=timeout)
        except requests.RequestException as e:
            return Result(False, f"GET {url}: {type(e).__name__}")
        if not r.ok:
            return Result(False, f"GET {url}: HTTP {r.status_code}")
        try:
            complaint = predicate(r) if predicate else None
        except (ValueError, AttributeError, TypeError) as e:  # not the answer we expect: someone else's server?
            return Result(False, f"GET {url}: unexpected answer ({type(e).__name__})")
        return Result(complaint is None, complaint or f"GET {url}: HTTP {r.status_code}")

    return check


def redis_ping(port: int, password: str | None = None, host: str = "127.0.0.1", timeout: float = 2.0) -> Check:
    """Speak just enough RESP to AUTH and PING, so readiness needs no Redis client."""

    def check() -> Result:
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                if password:
                    s.sendall(_resp("AUTH", password))
                    if not s.recv(64).startswith(b"+OK"):
                        return Result(False, "redis AUTH refused")
                s.sendall(_resp("PING"))
                reply = s.recv(64)
        except OSError as e:
            return Result(False, f"redis {host}:{port}: {e.strerror or e}")
        return Result(reply.startswith(b"+PONG"), f"redis PING: {reply.strip().decode(errors='replace')}")

    return check


def _resp(*parts: str) -> bytes:
    out = f"*{len(parts)}\r\n".encode()
    for p in parts:
        b = p.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def all_of(*checks: Check) -> Check:
    def check() -> Result:
        details = []
        for c in checks:
            r = c()
            if not r.ok:
                return r
            details.append(r.detail)
        return Result(True, "; ".join(details))

    return check


def wait_for(check: Check, timeout: float, interval: float = 0.25,
             abort: Callable[[], str | None] | None = None) -> Result:
    """Poll `check` until ok or `timeout`. `abort` may end the wait early (e.g. the process died)."""
    deadline = time.monotonic() + timeout
    last = Result(False, "not checked yet")
    while True:
        last = check()
        if last.ok:
            return last
        if abort and (why := abort()):
            return Result(False, why)
        if time.monotonic() >= deadline:
            return Result(False, f"not healthy after {timeout:.0f}s: {last.detail}")
        time.sleep(interval)
