"""What a scenario is: a credential bug injected into the real systems, the symptom it must produce in a real
DAG run, the story, the cause, the fix, and how to take it out again."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

from keycloak import KeycloakAdmin

from sandbox import reconcile
from sandbox.clients import Clients
from sandbox.commands import accounts
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.plan import Addresses, AirflowConnection, api_id_of, plan, policy_id
from sandbox.runtime.base import RUNTIMES, AirflowHandoff, Endpoints, Runtime
from sandbox.spec import Spec
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.keycloak.applier import CLIENT_LIFESPAN


@dataclass(frozen=True)
class Symptom:
    """What a broken connection shows in the smoke's real DAG run."""

    hop: str  # the first hop that fails: connection | token | gateway | upstream; task: it failed before a call
    status: int | None  # the gateway's HTTP status (None: no call reached it)
    words: str  # the gateway's or IdP's own words, as a fragment of the failing hop's detail
    log: str  # a fragment of the task log's error line

    def matches(self, other: Symptom) -> bool:
        return (self.hop, self.status) == (other.hop, other.status) and self.words in other.words \
            and self.log in other.log


@dataclass
class ScenarioContext:
    """The live sandbox a scenario works on."""

    spec: Spec
    endpoints: Endpoints
    paths: SandboxPaths
    handoff: AirflowHandoff
    runtime: Runtime  # for faults that need a process restarted with another environment

    @classmethod
    def of(cls, spec: Spec, rt: Runtime) -> ScenarioContext:
        """The live sandbox `rt` runs, for scenarios of `spec`."""
        return cls(spec, rt.endpoints(), rt.paths, rt.handoff(), rt)

    @cached_property
    def clients(self) -> Clients:
        return Clients(self.endpoints)

    def keycloak(self, realm: str) -> KeycloakAdmin:
        admin = self.clients.keycloak
        admin.change_current_realm(realm)
        return admin

    def token(self, account: str, env: str, scope: str = "") -> str:
        """A fresh token for a service account, with the secret the sandbox stored for it."""
        return accounts.auth_for(self.spec, self.endpoints, self.paths, account, env, scope).token()

    def set_client_lifespan(self, conn_id: str, seconds: str) -> str:
        """Override the access-token lifespan of the client `conn_id`'s route uses ("" removes the override: Keycloak
        merges client attributes, so a key left out would be kept); returns the value it had."""
        route = self.routes()[conn_id]
        return self.set_lifespan(route["env"], route["client_id"], seconds)

    def set_lifespan(self, realm: str, client_id: str, seconds: str) -> str:
        """Override the access-token lifespan of client `client_id` of `realm` (as set_client_lifespan)."""
        admin = self.keycloak(realm)
        uuid = admin.get_client_id(client_id)
        attrs = admin.get_client(uuid).get("attributes", {})
        admin.update_client(uuid, {"attributes": {**attrs, CLIENT_LIFESPAN: seconds}})
        return attrs.get(CLIENT_LIFESPAN, "")

    def apply(self) -> None:
        """`sandbox apply`: the spec, seeded into the live systems again."""
        reconcile.apply(self.spec, self.endpoints, self.paths)

    def routes(self) -> dict[str, dict]:
        return airflow_files.read_routes(self.handoff.lib)

    def write_routes(self, routes: dict[str, dict]) -> None:
        airflow_files.write_routes(self.handoff.lib, routes)


@dataclass(frozen=True)
class Pick:
    """Which connection of the spec a scenario breaks, said by position, never by id: the `env`-th environment
    Airflow has granted connections in and its `service`-th granted service, in the spec's order (a granted
    connection, because the baseline must be green)."""

    env: int = 0
    service: int = 0

    def choose(self, spec: Spec) -> AirflowConnection:
        granted = [c for c in connections_of(spec) if c.scope]
        envs = list(dict.fromkeys(c.env for c in granted))
        if self.env >= len(envs):
            raise SandboxError(f"This scenario needs {self.env + 1} environments with granted connections; "
                               f"{spec.source} has {len(envs)}.", "run it against a spec with more environments.",
                               exit_code=2)
        in_env = [c for c in granted if c.env == envs[self.env]]
        if self.service >= len(in_env):
            raise SandboxError(f"This scenario needs {self.service + 1} granted services in {envs[self.env]}; "
                               f"{spec.source} has {len(in_env)}.", "run it against a spec with more services.",
                               exit_code=2)
        return in_env[self.service]


def connections_of(spec: Spec) -> list[AirflowConnection]:
    """The spec's connections; their ids, environments, services, clients and scopes (not their URLs)."""
    return plan(spec, Addresses.nowhere()).connections


class Scenario(ABC):
    name: str
    pick: Pick = Pick()  # which connection it breaks, of whatever spec it runs against
    target: AirflowConnection | None = None  # the connection it breaks, once `on(spec)` chose it
    unbound_because: str = ""  # why a spec has no connection for it (the catalogue listing shows it instead)
    story: str  # what happens, as a team would tell it
    cause: str
    fix: str
    expected: Symptom
    doctor_says: str  # a fragment of `sandbox doctor`'s verdict while the fault is in place
    dag: str | None = None  # the repro DAG that shows the bug (fixtures/dags/sandbox_repro.py); None: the smoke
    runtimes: tuple[str, ...] = RUNTIMES  # where it can be reproduced (every runtime unless it says)
    needs: str = ""  # why not elsewhere, when `runtimes` is not every runtime
    # the `sandbox snapshot` facts the fault changes (path patterns, `*` for a part): `compare` names the scenario
    # when every one of them differs between a failing machine and a working one
    differs: tuple[str, ...] = ()

    def on(self, spec: Spec, connection: str | None = None) -> Scenario:
        """This scenario bound to the connection it breaks in `spec` (whose DAG run shows the symptom): the one it
        picks, or `connection` (the one a kept fault was injected into)."""
        try:
            target = next(c for c in connections_of(spec) if c.conn_id == connection) if connection \
                else self.pick.choose(spec)
        except StopIteration:
            raise SandboxError(f"{self.name} was kept on {connection}, which {spec.source} no longer has.",
                               "revert with the spec it was injected with (--spec).", exit_code=2) from None
        except SandboxError as e:
            raise SandboxError(f"{self.name}: {e.message}", e.fix, exit_code=e.exit_code) from None
        bound = copy.copy(self)
        bound.target = target
        return bound

    @property
    def connection(self) -> str:
        """The id of the connection it breaks ('' before `on`, or why not where the spec has none)."""
        return self.target.conn_id if self.target else self.unbound_because

    @property
    def api_id(self) -> str:
        """The gateway API of the connection it breaks."""
        return api_id_of(self.target.env, self.target.service)

    @property
    def policy(self) -> str:
        """Airflow's policy on that API."""
        return policy_id(self.target.env, self.target.client_id, self.target.service)

    @abstractmethod
    def inject(self, ctx: ScenarioContext) -> None: ...

    def revert(self, ctx: ScenarioContext) -> None:
        """Most faults are drift from the spec: `sandbox apply` takes them out (the caller runs it after this)."""
        return None

    def doctor_args(self, paths: SandboxPaths) -> list[str]:
        """What `sandbox doctor` is asked to name the fault with, while it is kept."""
        return ["--connection", self.connection]

    def tidy(self, ctx: ScenarioContext) -> None:
        """After the green check: remove what running the scenario's DAG leaves behind (none by default)."""
        return None
