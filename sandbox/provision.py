"""Shared provisioning mechanics: a version-keyed cache directory per component, filled once.

`cached_build` holds a file lock (two concurrent runs: the second waits, then finds it done) and marks
the directory complete only at the end, so an interrupted run is simply started again next time.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from sandbox.errors import SandboxError

Say = Callable[[str], None]
DONE_MARKER = ".provisioned"


def is_done(target: Path) -> bool:
    return (target / DONE_MARKER).is_file()


@contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_build(target: Path, build: Callable[[Path], None], say: Say) -> Path:
    """Run `build(target)` unless `target` is already complete; returns `target`.

    Built in place (virtualenvs hard-code their path); the marker written last is what makes it count.
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
        (target / DONE_MARKER).write_text("ok\n")
    return target


def require_tool(tool: str, package_hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise SandboxError(f"`{tool}` was not found on PATH.", f"install it: {package_hint}.")
    return path


def run(cmd: list[str], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 1800) -> str:
    """Run a provisioning step; on failure raise one sentence with the tail of its output."""
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise SandboxError(f"{what} timed out after {timeout:.0f}s.", "check the network and retry.") from e
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-12:])
        raise SandboxError(f"{what} failed (exit {p.returncode}):\n{tail}\n", "see the output above; re-run "
                           "`sandbox provision` once the cause is fixed (finished components are kept).")
    return p.stdout
