"""What the environment tells every command, parsed in one place and read once at the edge (the CLI's group for
each command, the pytest plugin once per session) — then passed down, so no module below reads these variables
again.

SANDBOX_PORTS (NAME=PORT,...), SANDBOX_WITHOUT (space-separated components), SANDBOX_RUNTIME (a new sandbox's
runtime), SANDBOX_KUBE_CONTEXT and SANDBOX_KUBE_NAMESPACE (where a new sandbox of the kubernetes runtime runs).
SANDBOX_HOME and SANDBOX_CACHE are read by `SandboxPaths.resolve`; per-component variables (images, a
Tyk build) by the component or runtime they concern.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.host import ports


@dataclass(frozen=True)
class Settings:
    ports_text: str = ""
    without: tuple[str, ...] = ()
    runtime: str | None = None
    kube_context: str = ""  # the kubernetes runtime's kubeconfig context ('' = the current one)
    kube_namespace: str = ""  # and its namespace ('' = one derived from the home)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(env.get("SANDBOX_PORTS", ""), tuple(env.get("SANDBOX_WITHOUT", "").split()),
                   env.get("SANDBOX_RUNTIME", "").strip() or None, env.get("SANDBOX_KUBE_CONTEXT", "").strip(),
                   env.get("SANDBOX_KUBE_NAMESPACE", "").strip())

    @property
    def ports(self) -> dict[str, int]:
        """Parsed when asked: a malformed SANDBOX_PORTS fails the commands that use ports, not `sandbox versions`."""
        return ports.parse_overrides(self.ports_text)
