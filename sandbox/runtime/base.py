"""The runtime interface: provision, start, stop and health-check components; hand back endpoints.

A runtime knows nothing of the spec. `local` runs native processes; a `docker` runtime (official images)
implements the same interface. The CLI, the test holders and apply use only this interface.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import SandboxError, use_one_of
from sandbox.paths import SandboxPaths

# (component, message): progress of long work, rendered by the CLI
Progress = Callable[[str, str], None]

RUNTIMES = ("local", "docker", "kubernetes")  # each made by sandbox.stack.factory


@dataclass
class ComponentStatus:
    name: str
    state: str  # running | stopped | crashed | unsupervised (serving, its recorded process gone) | disabled
    healthy: bool | None  # None when not checked (not running)
    detail: str
    url: str
    urls: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    username: str | None = None
    # the login's secret, unmasked; renderers mask it unless asked; kept out of repr (a handle can reach test output)
    secret: str | None = field(default=None, repr=False)
    # where a secret the page never shows lives and the command that prints it ('' = the page may show it)
    secret_elsewhere: str = ""
    # where the stack's other components reach it ('' = `url`): a container network's service name and port
    inner_url: str = ""
    runtime: str = ""  # which runtime runs it (RUNTIMES)
    # replica (its pod) -> its host URL, where it runs replicated (the gateway on a cluster); {} = `url` is the one
    replicas: dict[str, str] = field(default_factory=dict)
    # its units (processes, services, pods) that exited of themselves, and those not running (the ended ones and
    # those that stopped with them: services sharing one container)
    ended: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


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
    # makes what was just written into the handoff's folders visible to the runtime's Airflow: nothing where Airflow
    # reads them where they are (a process, a bind mount); a copy into the cluster on kubernetes
    publish: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)
    # Airflow's processes' environments as the runtime declares them (label -> variables), where the host cannot
    # read them from the processes themselves (a cluster's pods); None: doctor reads the processes (`pids`)
    environs: Callable[[], dict[str, dict[str, str]] | None] = field(default=lambda: None, repr=False,
                                                                     compare=False)
    # where the CLI keeps the Airflow token it signed in with (None: each process signs in for itself)
    airflow_token: Path | None = None
    # restarts one unit of a component as it is configured now (what apply wrote for it to read at its start)
    restart: Callable[[str, str], None] = field(default=lambda component, unit: None, repr=False, compare=False)

    @classmethod
    def of(cls, rows: list[ComponentStatus], publish: Callable[[], None] | None = None,
           environs: Callable[[], dict[str, dict[str, str]] | None] | None = None,
           restart: Callable[[str, str], None] | None = None, airflow_token: Path | None = None) -> Endpoints:
        out = cls({s.name: s for s in rows}, airflow_token=airflow_token)
        if publish:
            out.publish = publish
        if environs:
            out.environs = environs
        if restart:
            out.restart = restart
        return out

    def url(self, name: str) -> str:
        return self.components[name].url

    def secret(self, name: str) -> str | None:
        return self.components[name].secret

    def inner(self, name: str) -> str:
        """The URL the stack's components use for `name` (what Airflow's connections and Tyk's APIs carry)."""
        return self.components[name].inner_url or self.url(name)

    def to_host(self, url: str) -> str:
        """An inner URL as the host reaches it (doctor calls from the host what the components call inside)."""
        for s in self.components.values():
            if s.inner_url and (url == s.inner_url or url.startswith(s.inner_url + "/")):
                return s.url + url[len(s.inner_url):]
        return url


@dataclass(frozen=True)
class AirflowHandoff:
    """The files apply writes and the runtime's Airflow reads: the contract between them.

    `vault_token`: the vault token Airflow's processes read the client secrets with (written by OpenBao's
    bootstrap, limited by a vault policy to Airflow's paths; 0600). `dag_folder`: Airflow's DAG folder (the smoke
    and repro DAGs). `lib`: on PYTHONPATH of every Airflow process (the token helper, the secrets backend, the
    triggerer's guard, the routes file; see sandbox/systems/airflow/files.py). `home`: the HOME its task processes see
    (files such as ~/.netrc are read from there).
    A runtime that runs Airflow elsewhere (a container) mounts these host paths where its Airflow reads them.
    """

    vault_token: Path
    dag_folder: Path
    home: Path
    lib: Path

    @classmethod
    def of(cls, paths: SandboxPaths) -> AirflowHandoff:
        return cls(paths.airflow_vault_token, paths.dags, paths.airflow_home_dir, paths.airflow_lib)


class Runtime(ABC):
    name: str
    paths: SandboxPaths

    @abstractmethod
    def component_names(self) -> list[str]: ...

    @abstractmethod
    def provision(self, only: list[str], progress: Progress) -> list[ProvisionResult]: ...

    @abstractmethod
    def up(self, without: list[str], ports: dict[str, int], progress: Progress) -> list[UpResult]: ...

    @abstractmethod
    def down(self, force: bool = False, volumes: bool = False) -> list[str]:
        """Stop everything of the sandbox; `volumes` also drops its container volumes (docker runtime)."""

    @abstractmethod
    def status(self) -> list[ComponentStatus]: ...

    @abstractmethod
    def log_path(self, component: str) -> Path: ...

    @abstractmethod
    def restart(self, component: str, unit: str, extra_env: dict[str, str]) -> None:
        """Restart one unit of a running component — a process locally, a container on docker, by the name its
        state record has — with `extra_env` added to its environment ({}: as configured), and wait until the
        component is healthy. How one worker gets an environment of its own. (A unit whose container hosts others,
        docker's shared Airflow container, restarts with them, and they get the variables too.)"""

    def follow(self, components: list[str]) -> Iterator[tuple[str, str]]:
        """(component, line) for each new log line of `components`, as it comes, until interrupted."""
        handles = {}
        with ExitStack() as stack:
            for name in components:
                path = self.log_path(name)
                if path.exists():
                    f = stack.enter_context(open(path, errors="replace"))
                    f.seek(0, os.SEEK_END)
                    handles[name] = f
            while True:
                for name, f in handles.items():
                    for line in f:
                        yield name, line.rstrip("\n")
                time.sleep(0.3)

    def first_use_urls(self, endpoints: Endpoints) -> list[str]:
        """URLs the running components build on their first request (requested beside apply); none by default."""
        return []

    def endpoints(self, rows: list[ComponentStatus] | None = None) -> Endpoints:
        """Where the stack answers: from `rows` (a status just taken), else from a new one."""
        return Endpoints.of(self.status() if rows is None else rows, self.publish_handoff, self.airflow_environs,
                            lambda component, unit: self.restart(component, unit, {}), self.paths.airflow_token)

    def publish_handoff(self) -> None:
        """Make what was just written into the handoff's folders visible to this runtime's Airflow: nothing to do
        where Airflow reads them in place (its processes, bind mounts)."""
        return None

    def airflow_environs(self) -> dict[str, dict[str, str]] | None:
        """Each Airflow process's environment where the host cannot read the processes (label -> variables);
        None: it can, from their pids."""
        return None

    def handoff(self) -> AirflowHandoff:
        return AirflowHandoff.of(self.paths)

    def check_names(self, names: list[str], what: str) -> None:
        known = self.component_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SandboxError(f"Unknown component {unknown[0]!r} for {what}.",
                               use_one_of(unknown[0], known), exit_code=2)
