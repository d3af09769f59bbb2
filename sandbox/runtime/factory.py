"""Which runtime runs a sandbox: the one place that knows the runtimes by name.

A sandbox keeps the runtime it was started with (its state file says which) until `--runtime` names another;
a new one gets SANDBOX_RUNTIME, else `docker` when an engine answers, else `local`.
"""

from __future__ import annotations

import os

from sandbox import state as statefile
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Runtime

RUNTIMES = ("local", "docker")
IMAGE_CHOICES = ("auto", "official", "local")


def choose(paths: SandboxPaths, asked: str | None = None) -> str:
    if asked:
        return asked
    try:
        recorded = statefile.load(paths.state)
    except SandboxError:
        recorded = None
    if recorded is not None:
        return recorded.runtime
    given = os.environ.get("SANDBOX_RUNTIME", "").strip()
    if given:
        if given not in RUNTIMES:
            raise SandboxError(f"SANDBOX_RUNTIME={given} is not a runtime.", f"use one of: {', '.join(RUNTIMES)}.",
                               exit_code=2)
        return given
    from sandbox import engine

    return "docker" if engine.answers() else "local"


def make_runtime(paths: SandboxPaths, env_ports: dict[str, int] | None = None, name: str | None = None,
                 images: str = "auto") -> Runtime:
    name = choose(paths, name)
    # imported here: the components (and the docker SDK) load only when needed
    if name == "docker":
        from sandbox.runtime.docker import DockerRuntime

        return DockerRuntime(paths, env_ports, images)
    from sandbox.runtime.local import LocalRuntime

    return LocalRuntime(paths, env_ports)


def down_everywhere(paths: SandboxPaths, force: bool = False, volumes: bool = False) -> list[str]:
    """`sandbox down`: the recorded runtime stops what it runs; then whatever the other runtime still runs in this
    sandbox's name, which the state file does not record (it was lost, or a switch overwrote it): processes that
    carry the sandbox's mark, containers that carry its project label. Nothing of the sandbox is left running."""
    rt = make_runtime(paths)
    stopped = rt.down(force=force, volumes=volumes)
    if rt.name == "docker":
        from sandbox import supervisor

        if strays := supervisor.owned_processes(paths.home):
            supervisor.terminate(strays)
            stopped.append("unrecorded local processes")
        return stopped
    from sandbox import engine

    if paths.home.exists() and engine.answers():
        import docker.errors

        from sandbox.runtime.docker import project_name, remove_project

        try:
            if remove_project(engine.client(timeout=30), project_name(paths.home), volumes):
                stopped.append("unrecorded containers")
        except docker.errors.DockerException as e:  # what the recorded runtime ran is stopped already
            raise SandboxError(f"The sandbox's processes are stopped, but its leftover containers could not be "
                               f"removed: {e}.", "check the Docker engine, then `sandbox down` again.") from e
    return stopped
