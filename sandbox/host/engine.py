"""The Docker engine, reached through the `docker` SDK: whether one answers, and one clear error when not."""

from __future__ import annotations

import os

from sandbox.errors import SandboxError

START_HINT = ("start it (`dockerd &` as root where there is no systemd, or `systemctl start docker`), "
              "or use --runtime local (native processes; no Docker needed).")


def client(timeout: int = 120):
    """A client of the engine DOCKER_HOST (or the default socket) names; SandboxError when none answers."""
    import docker  # imported here: commands of the local runtime never load it
    from docker.errors import DockerException

    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
        return c
    except DockerException as e:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SandboxError(f"No Docker engine answers at {where} ({_first_line(e)}).", START_HINT) from e


def answers() -> bool:
    """Whether an engine answers now: how `up` picks its default runtime."""
    try:
        client(timeout=5).close()
        return True
    except SandboxError:
        return False


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
