"""What a component is, said once for every runtime: its ports, where the stack reaches it, its health, the
sandbox secrets it reads, the host folders it shares, and how it runs natively (the local runtime's processes).
The docker runtime derives its compose variables and host preparation from the same description; a test holds
the compose file to it. Components know nothing of the spec."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.host.provision import Say
from sandbox.host.readiness import Check
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import AirflowHandoff
from sandbox.runtime.kubernetes.forms import ClusterForm


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to a clean base environment
    cwd: Path | None = None


@dataclass(frozen=True)
class ComponentContext:
    """What a component may know about its sandbox: where, which ports, which secrets."""

    paths: SandboxPaths
    ports: dict[str, int]
    secrets: dict[str, str]
    runtime: str = ""  # which runtime runs it (a component's state may differ per runtime: the vault's storage)

    @property
    def cache(self) -> Path:
        return self.paths.cache

    @property
    def handoff(self) -> AirflowHandoff:
        return AirflowHandoff.of(self.paths)

    def data_dir(self, component: str) -> Path:
        return self.paths.data(component)

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}"


@dataclass(frozen=True)
class Login:
    username: str
    secret_name: str  # key into the sandbox's secrets; the value is masked unless asked for


class Component(ABC):
    name: str
    # port name -> default port; the first is the component's main URL
    default_ports: dict[str, int]
    # where the stack's other components reach it in a container network: service name, port, scheme
    service: str = ""  # '' = its name
    inner_port: int = 8080
    inner_scheme: str = "http"
    # the sandbox secrets its processes read (credentials.GENERATORS' names): a container gets these, no others
    secrets: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # components that must be healthy before this one starts
    start_timeout: float = 120.0
    stop_grace: float = 8.0  # seconds between TERM and KILL when it stops
    login: Login | None = None
    # an unhealthy but running instance is restarted by `up` (rather than waited for): a restart heals it
    restart_heals: bool = False
    # (fragment of the line in its log that says why a process exited, the fix): what `up` says when it crashes
    crash_fixes: tuple[tuple[str, str], ...] = ()
    # what it runs differently on a cluster (its vendor's chart, tasks in pods of their own); None: its services
    cluster_form: ClusterForm | None = None
    # the uid its image runs as where that user must own the host folders it is given (a root host); None: not so
    image_user: int | None = None
    # its host folders hold what the sandbox hands Airflow (DAGs, lib, the vault token): copied into a cluster
    holds_handoff: bool = False
    # paths (under its main URL) it builds on their first request, not at its start: `up` requests them beside
    # apply, so the first real use (smoke's first task) does not wait for that work
    first_use: tuple[str, ...] = ()

    @abstractmethod
    def provisioned(self, cache: Path) -> bool: ...

    @abstractmethod
    def provision(self, cache: Path, say: Say) -> None:
        """Fetch/build into the cache. Idempotent; raises SandboxError naming what to install."""

    def start_after(self, ctx: ComponentContext) -> tuple[str, ...]:
        """The components this start waits for: `after`, unless nothing that needs them can run yet."""
        return self.after

    def preflight(self) -> None:
        """Cheap checks of what starting needs (e.g. a Java runtime), before anything starts."""
        return None

    def prepare(self, ctx: ComponentContext, say: Say) -> None:
        """Per-sandbox setup before the processes start (config files, schema migration)."""
        return None

    @abstractmethod
    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]: ...

    def launcher(self, ctx: ComponentContext, units: list[ProcessSpec]) -> ProcessSpec | None:
        """One process that starts `units` together (loads once what they share, forks each, reports their pids:
        `supervisor.spawn_forked`), or None: each starts on its own. A unit restarted alone starts on its own."""
        return None

    def shared_container(self, commands: dict[str, list[str]]) -> tuple[list[str], dict[str, str]] | None:
        """On a container runtime: the command and added environment of one container — its `service`'s — that
        runs every service of `commands` (name -> its command in the compose file) from one process, as `launcher`
        does natively; None: each service in a container of its own. A service restarted alone leaves it for a
        container of its own."""
        return None

    def release_command(self, unit: str) -> list[str]:
        """Run in the container `shared_container` made: stops `unit` for good while the others go on (before it is
        restarted in a container of its own)."""
        raise NotImplementedError(f"{self.name} runs no shared container")

    def post_start(self, ctx: ComponentContext, say: Say) -> None:
        """Once healthy after a start: per-sandbox changes that need the running service."""
        return None

    def ensure(self, ctx: ComponentContext, say: Say) -> None:
        """Once healthy, at every `up` (started now or already running): idempotent upkeep of what it must hold
        (the vault's mounts, policy and Airflow's token), so `up` repairs what a running instance lost."""
        return None

    @abstractmethod
    def health(self, ctx: ComponentContext) -> Check: ...

    def url(self, ctx: ComponentContext) -> str:
        return ctx.url(next(iter(self.default_ports)))

    def inner_url(self) -> str:
        """Its main URL inside a container network."""
        return f"{self.inner_scheme}://{self.service or self.name}:{self.inner_port}"

    def host_folders(self, ctx: ComponentContext) -> dict[str, Path]:
        """Host folders a runtime that runs it elsewhere (a container) mounts: compose variable -> path."""
        return {}

    def compose_settings(self, ctx: ComponentContext) -> dict[str, str]:
        """Per-sandbox values of the compose file's variables for it, beyond ports, images and folders."""
        return {}

    def prepare_host(self, ctx: ComponentContext) -> None:
        """What the host holds for it, whichever runtime runs it (files it reads, folders it writes)."""
        return None

    def login_secret(self, ctx: ComponentContext) -> str | None:
        """The secret of its login (`status --show-secrets`, the CLI's clients)."""
        return ctx.secrets.get(self.login.secret_name) if self.login else None

    def secret_elsewhere(self, ctx: ComponentContext) -> str:
        """For a login too strong for the sandbox's page to show: where it lives and the command that prints it."""
        return ""

    def extra_urls(self, ctx: ComponentContext) -> dict[str, str]:
        return {}
