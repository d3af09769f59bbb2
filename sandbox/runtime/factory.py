"""Which runtime runs a sandbox: the one place that knows the runtimes by name."""

from __future__ import annotations

from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Runtime

RUNTIMES = ("local", "docker")


def make_runtime(paths: SandboxPaths, env_ports: dict[str, int] | None = None, name: str = "local") -> Runtime:
    if name == "docker":
        raise SandboxError("The docker runtime is not available in this version.",
                           "use --runtime local (native processes; no Docker needed).", exit_code=2)
    from sandbox.runtime.local import LocalRuntime  # imported here: the components load only when needed

    return LocalRuntime(paths, env_ports)
