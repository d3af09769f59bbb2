"""Start, find, stop and describe the page's server: a process of the host (marked as the sandbox's, working in
`<home>/data/ui`, logging to `<home>/logs/ui.log`), recorded in `<home>/ui.json`; its token lives 0600 in the
secrets folder and is kept across restarts, so a bookmarked link keeps working, until `sandbox ui --rotate-token`.

A browser reaches the page as `sandbox.localhost` (browsers resolve every `*.localhost` name to loopback), a name
no other component answers to: cookies ignore ports, so a cookie set for 127.0.0.1 would reach every service on
127.0.0.1. The sandbox's own calls (health, tests) go to 127.0.0.1 with the token in a header."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

import requests

from sandbox.errors import SandboxError
from sandbox.host import supervisor
from sandbox.host.credentials import write_private
from sandbox.host.ports import HOST, holder, is_free
from sandbox.host.privacy import private_umask
from sandbox.host.provision import file_lock
from sandbox.paths import SandboxPaths
from sandbox.runtime import state as statefile
from sandbox.runtime.base import ComponentStatus, Progress
from sandbox.runtime.skeleton import HOST_PORTS
from sandbox.runtime.state import ProcessRecord

NAME = "ui"
START_TIMEOUT = 20.0
PAGE_HOST = "sandbox.localhost"
TOKEN_BYTES = 24
MIN_TOKEN_LENGTH = 32  # token_urlsafe(24)'s length: a shorter one was not made here


def _trusted(path: Path) -> str | None:
    """The token in the file, if the file is this user's alone and holds a token as long as the ones made here."""
    try:
        st = path.stat()
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or len(value) < MIN_TOKEN_LENGTH:
        return None
    return value


def token(paths: SandboxPaths) -> str:
    """The page's token, made once per sandbox; an empty, short, foreign-owned or group-readable file is not
    trusted (an empty token would let anything in) and is replaced by a new token."""
    value = _trusted(paths.ui_token)
    if value is None:
        value = new_token(paths)
    return value


def new_token(paths: SandboxPaths) -> str:
    value = secrets.token_urlsafe(TOKEN_BYTES)
    paths.ui_token.unlink(missing_ok=True)  # a foreign owner's file is replaced, not written through
    write_private(paths.ui_token, value)
    return value


def port_of(paths: SandboxPaths) -> int:
    """The page's port: the one the sandbox's state resolved (SANDBOX_PORTS / --port ui=…), else the default."""
    try:
        st = statefile.load(paths.state)
    except (OSError, ValueError, KeyError):
        st = None
    return (st.ports if st else {}).get(NAME, HOST_PORTS[NAME])


def url(port: int) -> str:
    """Where a browser opens the page."""
    return f"http://{PAGE_HOST}:{port}/"


def api_url(port: int) -> str:
    """Where the sandbox's own code calls the server (no name to resolve)."""
    return f"http://{HOST}:{port}/"


def _record(paths: SandboxPaths) -> ProcessRecord | None:
    try:
        raw = json.loads(paths.ui.read_text())
        return ProcessRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"{api_url(port)}healthz", timeout=2).text == "ok"
    except requests.RequestException:
        return False


def running(paths: SandboxPaths) -> tuple[ProcessRecord, int] | None:
    """The live server's record and port, or None."""
    rec = _record(paths)
    if rec is None or not supervisor.alive(rec):
        return None
    port = int(rec.cmd[rec.cmd.index("--port") + 1]) if "--port" in rec.cmd else port_of(paths)
    return rec, port


def ensure(paths: SandboxPaths, spec_path: Path | None, progress: Progress) -> str:
    """The page's server running (idempotent): 'already-running' or 'started'."""
    with file_lock(paths.home / ".ui.lock"):  # two `up`s at once start one server
        found = running(paths)
        cmd = [sys.executable, "-m", "sandbox.ui.server", "--home", str(paths.home), "--port", str(port_of(paths)),
               *(["--spec", str(Path(spec_path).resolve())] if spec_path and Path(spec_path).is_file() else [])]
        if found is not None and found[0].cmd == cmd and _healthy(found[1]):
            return "already-running"
        if found is not None:
            supervisor.terminate(supervisor.tree([found[0]]))
        port = port_of(paths)
        if not is_free(port):
            raise SandboxError(f"Port {port} (ui) is taken by {holder(port)}.",
                               "stop that process, or give the page another port: sandbox up --port ui=<free port>.")
        token(paths)
        progress(NAME, f"starting the sandbox's page on {url(port)}")
        _spawn(paths, cmd, port)
        return "started"


def _spawn(paths: SandboxPaths, cmd: list[str], port: int) -> None:
    folder = paths.home / "data" / NAME
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with private_umask():  # what it writes is the user's alone, as for every process of the sandbox
        rec = supervisor.spawn(NAME, cmd, {"PYTHONPATH": _package_root()}, folder,
                               paths.home / "logs" / "ui.log", paths.home)
    write_private(paths.ui, json.dumps(rec.__dict__))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _healthy(port):
            return
        if not supervisor.alive(rec):
            break
        time.sleep(0.1)
    raise SandboxError(f"The sandbox's page did not start on port {port}.",
                       f"see {paths.home / 'logs' / 'ui.log'}; then `sandbox up` again.")


def rotate_token(paths: SandboxPaths) -> bool:
    """A new token; a running server is restarted with it, which ends every session (cookie or open event
    stream) that holds the old one. True when a server was restarted."""
    with file_lock(paths.home / ".ui.lock"):
        new_token(paths)
        found = running(paths)
        if found is None:
            return False
        rec, port = found
        supervisor.terminate(supervisor.tree([rec]), grace=3.0)
        _spawn(paths, rec.cmd, port)
        return True


def opener(paths: SandboxPaths) -> Path:
    """A 0600 page in the sandbox's home that hands the token to the server in a form post and lands on the page:
    what `sandbox ui` opens, so the token is on no command line (xdg-open's, the browser's) and in no address
    bar or history, as notebook servers do it. Refuses when the server is not running."""
    found = running(paths)
    if found is None:
        raise SandboxError("The sandbox's page is not running.", "run `sandbox up` (it starts with the stack).")
    target = url(found[1]) + "login"
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Opening the sandbox's page</title>
</head><body onload="document.forms[0].submit()"><form method="post" action="{target}">
<input type="hidden" name="token" value="{_served_token(paths)}">
<p>Opening the sandbox's page… <button type="submit">Open it</button></p></form></body></html>
"""
    path = paths.home / "data" / NAME / "open.html"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, html)
    return path


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def stop(paths: SandboxPaths) -> bool:
    """Stop the page's server (by its record, and any process of the sandbox working in its folder)."""
    rec = _record(paths)
    procs = supervisor.tree([rec]) if rec is not None else []
    procs += [p for p in supervisor.owned_processes(paths.home, NAME) if p.pid not in {q.pid for q in procs}]
    paths.ui.unlink(missing_ok=True)
    if not procs:
        return False
    supervisor.terminate(procs, grace=3.0)
    return True


def status_row(paths: SandboxPaths, runtime: str) -> ComponentStatus:
    """The page as a row of `sandbox status` (its token is the row's masked secret)."""
    found = running(paths)
    if found is None:  # recorded but gone is a crash, as for every component; `down` removes the record
        crashed = _record(paths) is not None
        return ComponentStatus(NAME, "crashed" if crashed else "stopped", None,
                               "its process ended (`sandbox up` restarts it)" if crashed else
                               "the sandbox's page (`sandbox up` starts it)", url(port_of(paths)), runtime=runtime)
    rec, port = found
    healthy = _healthy(port)
    return ComponentStatus(NAME, "running", healthy, "the sandbox's page: `sandbox ui` opens it" if healthy else
                           "not answering", url(port), ports={NAME: port}, pids=[rec.pid], username="token",
                           secret=token(paths), runtime=runtime)


def _served_token(paths: SandboxPaths) -> str:
    """The token the running server holds: a file no longer trusted is replaced, and the server restarted with the
    new token (it read the old one at its start)."""
    value = _trusted(paths.ui_token)
    if value is None:
        rotate_token(paths)
        value = token(paths)
    return value


def link(paths: SandboxPaths) -> str:
    """The page's URL with its token (what `sandbox ui --url` prints); refuses when it is not running."""
    found = running(paths)
    if found is None:
        raise SandboxError("The sandbox's page is not running.", "run `sandbox up` (it starts with the stack).")
    return f"{url(found[1])}?token={_served_token(paths)}"
