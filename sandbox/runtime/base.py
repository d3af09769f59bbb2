"""The runtime interface: provision, start, stop and health-check components; hand back endpoints.

A runtime knows nothing of the spec. `local` runs native processes; a `docker` runtime (official images)
implements the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

# (component, message): progress of long work, rendered by the CLI
Progress = Callable[[str, str], None]


@dataclass
class ComponentStatus:
    name: str
    state: str  # running | stopped | crashed | disabled
    healthy: bool | None  # None when not checked (not running)
    detail: str
    url: str
    urls: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    username: str | None = None
    secret: str | None = None  # the login's secret, unmasked; renderers mask it unless asked


@dataclass
class ProvisionResult:
    name: str
    ok: bool
    action: str  # cached | provisioned | failed
    seconds: float
    detail: str = ""


@dataclass
class UpResult:
    name: str
    action: str  # already-running | started | restarted | stopped (disabled) | failed
    seconds: float
    detail: str = ""


@dataclass
class Endpoints:
    """What clients need to reach the stack, the same whichever runtime runs it."""

    components: dict[str, ComponentStatus]

    def url(self, name: str) -> str:
        return self.components[name].url

    def secret(self, name: str) -> str | None:
        return self.components[name].secret


class Runtime(ABC):
    name: str

    @abstractmethod
    def provision(self, only: list[str], progress: Progress) -> list[ProvisionResult]: ...

    @abstractmethod
    def up(self, without: list[str], ports: dict[str, int], progress: Progress) -> list[UpResult]: ...

    @abstractmethod
    def down(self, force: bool = False) -> list[str]: ...

    @abstractmethod
    def status(self) -> list[ComponentStatus]: ...

    def endpoints(self) -> Endpoints:
        return Endpoints({s.name: s for s in self.status()})
