"""Which runtime runs a sandbox: the one place that knows the runtimes by name.

A sandbox keeps the runtime it was started with (its state file says which) until `--runtime` names another;
a new one gets SANDBOX_RUNTIME, else `docker` when an engine answers, else `local`.
"""

from __future__ import annotations

import dataclasses

from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.runtime import state as statefile
from sandbox.runtime.base import RUNTIMES, Runtime
from sandbox.settings import Settings

IMAGE_CHOICES = ("auto", "official", "local")


def choose(paths: SandboxPaths, asked: str | None = None, given: str | None = None) -> str:
    """`asked` (--runtime), else the sandbox's recorded runtime, else `given` (SANDBOX_RUNTIME), else by engine."""
    if asked:
        return asked
    try:
        recorded = statefile.load(paths.state)
    except SandboxError:
        recorded = None
    if recorded is not None:
        return recorded.runtime
    if given:
        if given not in RUNTIMES:
            raise SandboxError(f"SANDBOX_RUNTIME={given} is not a runtime.", f"use one of: {', '.join(RUNTIMES)}.",
                               exit_code=2)
        return given
    from sandbox.host import engine

    return "docker" if engine.answers() else "local"


def make_runtime(paths: SandboxPaths, settings: Settings | None = None, name: str | None = None,
                 images: str = "auto", context: str | None = None, namespace: str | None = None) -> Runtime:
    """The runtime for the sandbox at `paths`; `settings`: what the environment said (read from it if not given)."""
    settings = settings or Settings.from_environment()
    name = choose(paths, name, settings.runtime)
    # imported here: the components (and the docker SDK) load only when needed
    from sandbox.systems import all_components

    components = all_components()
    if name == "docker":
        from sandbox.runtime.docker.runtime import DockerRuntime

        return DockerRuntime(paths, settings.ports, images, components=components)
    if name == "kubernetes":
        from sandbox.runtime.kubernetes.runtime import KubernetesRuntime

        return KubernetesRuntime(paths, settings.ports, context, namespace, settings, images, components=components)
    from sandbox.runtime.local import LocalRuntime

    return LocalRuntime(paths, settings.ports, components=components)


def down_everywhere(paths: SandboxPaths, force: bool = False, volumes: bool = False,
                    settings: Settings | None = None) -> list[str]:
    """`sandbox down`: the recorded runtime stops what it runs; then whatever the other runtime still runs in this
    sandbox's name, which the state file does not record (it was lost, or a switch overwrote it): processes that
    carry the sandbox's mark, containers that carry its project label. Nothing of the sandbox is left running."""
    # down needs no ports: a malformed SANDBOX_PORTS must not keep anyone from stopping the stack
    rt = make_runtime(paths, dataclasses.replace(settings or Settings.from_environment(), ports_text=""))
    from sandbox.stack import page as lifecycle

    stopped = ["ui"] if paths.home.exists() and lifecycle.stop(paths) else []  # the page first: it watches the rest
    stopped += rt.down(force=force, volumes=volumes)
    if rt.name == "docker":
        from sandbox.host import supervisor

        if strays := supervisor.owned_processes(paths.home):
            supervisor.terminate(strays)
            stopped.append("unrecorded local processes")
        return stopped
    from sandbox.host import engine

    if paths.home.exists() and engine.answers():
        import docker.errors

        from sandbox.runtime.docker.runtime import project_name, remove_project

        try:
            if remove_project(engine.client(timeout=30), project_name(paths.home), volumes):
                stopped.append("unrecorded containers")
        except docker.errors.DockerException as e:  # what the recorded runtime ran is stopped already
            raise SandboxError(f"The sandbox's processes are stopped, but its leftover containers could not be "
                               f"removed: {e}.", "check the Docker engine, then `sandbox down` again.") from e
    return stopped
