"""Shared provisioning mechanics: a version-keyed cache directory per component, filled once.

`cached_build` holds a file lock (two concurrent runs: the second waits, then finds it done) and marks
the directory complete only at the end, so an interrupted run is simply started again next time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.host.privacy import make_public

Say = Callable[[str], None]
DONE_MARKER = ".provisioned"

# Components build in threads, which Ctrl-C does not reach: `cancel` (called by the main thread) kills every
# build process's group, so the threads end at once instead of when their builds would have, marking nothing.
_cancelled = threading.Event()
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def spawn(cmd: list[str], **kw) -> subprocess.Popen:
    """Start a build process in its own process group, known to `cancel`."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    with _children_lock:
        _children.add(proc)
    if _cancelled.is_set():
        cancel()
    return proc


def reap(proc: subprocess.Popen) -> None:
    with _children_lock:
        _children.discard(proc)


def cancel() -> None:
    _cancelled.set()
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def interrupted() -> bool:
    return _cancelled.is_set()


def is_done(target: Path) -> bool:
    return (target / DONE_MARKER).is_file()


@contextmanager
def file_lock(path: Path, busy: Callable[[], bool] | None = None):
    """An exclusive lock on `path` for the block (yields True). `busy`, when given, is called once if another
    process holds it: it may say so, and returns whether to wait; False goes on without the lock (yields False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            if not busy():  # type: ignore[misc]
                yield False
                return
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_build(target: Path, build: Callable[[Path], None], say: Say) -> Path:
    """Run `build(target)` unless `target` is already complete; returns `target`.

    Built in place (virtualenvs hard-code their path); the marker written last is what makes it count. What is
    built is readable (and, where it runs, runnable) by every user, whatever the umask it was built under.
    """
    if is_done(target):
        return target
    with file_lock(target.parent / f".{target.name}.lock"):
        if is_done(target):  # another run finished it while we waited
            say("provisioned by a concurrent run")
            return target
        shutil.rmtree(target, ignore_errors=True)  # leftovers of an interrupted run
        target.mkdir(parents=True)
        build(target)
        if interrupted():  # a step killed half-way may have looked done: it does not count
            raise SandboxError(f"Provisioning {target.name} was interrupted.", "run it again; it starts afresh.")
        make_public(target)  # run by containers' own users too, even when built under `up`'s private umask
        (target / DONE_MARKER).write_text("ok\n")
        (target / DONE_MARKER).chmod(0o644)
    return target


def require_tool(tool: str, package_hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise SandboxError(f"`{tool}` was not found on PATH.", f"install it: {package_hint}.")
    return path


def run(cmd: list[str], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 1800) -> str:
    """Run a provisioning step; on failure raise one sentence with the tail of its output."""
    proc = spawn(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        proc.communicate()
        raise SandboxError(f"{what} timed out after {timeout:.0f}s.", "check the network and retry.") from e
    finally:
        reap(proc)
    if interrupted():
        raise SandboxError(f"{what} was interrupted.", "run `sandbox provision` again; it starts afresh.")
    if proc.returncode != 0:
        tail = "\n".join((out + err).strip().splitlines()[-12:])
        raise SandboxError(f"{what} failed (exit {proc.returncode}):\n{tail}\n", "see the output above; re-run "
                           "`sandbox provision` once the cause is fixed (finished components are kept).")
    return out


def sha256_of(path: Path) -> str:
    """The SHA-256 of a downloaded archive, checked against its pin before anything of it is unpacked."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
