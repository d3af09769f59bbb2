"""plan/apply across the three systems: desired state from the spec, live state from the running stack."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from keycloak import KeycloakAdmin
from keycloak.exceptions import KeycloakError

from sandbox import auth as auth_module
from sandbox.apply import Change, Step
from sandbox.apply import airflow as airflow_apply
from sandbox.apply import keycloak as keycloak_apply
from sandbox.apply import tyk as tyk_apply
from sandbox.errors import SandboxError
from sandbox.paths import airflow_secrets_file, client_secrets_file
from sandbox.plan import Desired, Inputs, plan, secret_key
from sandbox.runtime.base import Endpoints
from sandbox.secrets import write_private
from sandbox.spec import Spec


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # system -> why it was not compared
    counts: dict[str, int] = field(default_factory=dict)  # objects in the plan, per kind
    seconds: float = 0.0


def inputs(endpoints: Endpoints) -> Inputs:
    ports = {k: v for st in endpoints.components.values() for k, v in st.ports.items()}
    return Inputs(keycloak_url=endpoints.url("keycloak"), gateway_host="127.0.0.1", gateway_port=ports["tyk"],
                  upstream_url=endpoints.url("upstream"))


def running(endpoints: Endpoints, name: str) -> str | None:
    """Why `name` cannot be used now, or None when it runs healthy."""
    st = endpoints.components[name]
    if st.state != "running" or not st.healthy:
        return f"{name} is {st.state if st.state != 'running' else 'not healthy'}"
    return None


@dataclass
class Collected:
    desired: Desired
    steps: list[Step]
    skipped: dict[str, str]  # system -> why it was not compared
    admin: KeycloakAdmin | None  # logged in once, reused to read the client secrets after applying
    gateway: tyk_apply.TykGateway | None  # reloaded once after its steps ran


def collect(spec: Spec, endpoints: Endpoints) -> Collected:
    desired = plan(spec, inputs(endpoints))
    steps: list[Step] = []
    skipped: dict[str, str] = {}
    admin = None
    if why := running(endpoints, "keycloak"):
        skipped["keycloak"] = why
    else:
        admin = keycloak_apply.admin_client(endpoints.url("keycloak"), endpoints.secret("keycloak") or "")
        steps += keycloak_apply.steps(admin, desired)
    if why := running(endpoints, "airflow"):
        skipped["airflow"] = why
    else:
        api = airflow_apply.AirflowApi(endpoints.url("airflow"), endpoints.secret("airflow") or "")
        steps += airflow_apply.steps(api, desired)
    gateway = None
    if why := running(endpoints, "tyk"):
        skipped["tyk"] = why
    else:
        gateway = tyk_apply.TykGateway(endpoints.url("tyk"), endpoints.secret("tyk") or "")
        steps += tyk_apply.steps(gateway, desired)
    return Collected(desired, steps, skipped, admin, gateway)


@contextmanager
def _live_errors(what: str):
    """A live system's refusal while reading or writing becomes one sentence, not a traceback."""
    try:
        yield
    except (KeycloakError, requests.RequestException) as e:
        code = getattr(e, "response_code", None) or getattr(getattr(e, "response", None), "status_code", None)
        raise SandboxError(f"{what} failed: {type(e).__name__}" + (f" (HTTP {code})" if code else "") + f": {e}",
                           "check `sandbox status` and `sandbox logs`; then run the command again.") from e


def plan_report(spec: Spec, endpoints: Endpoints) -> Report:
    t0 = time.monotonic()
    with _live_errors("reading the live systems"):
        c = collect(spec, endpoints)
    return Report([s.change for s in c.steps], c.skipped, c.desired.counts(), time.monotonic() - t0)


def apply(spec: Spec, endpoints: Endpoints, home: Path) -> Report:
    t0 = time.monotonic()
    with _live_errors("reading the live systems"):
        c = collect(spec, endpoints)
    for step in c.steps:
        try:
            step.run()
        except SandboxError:
            raise
        except Exception as e:  # a live system said no: name the change that failed
            ch = step.change
            raise SandboxError(f"{ch.system}: {ch.action} {ch.kind} {ch.name} failed: {e}",
                               "fix the cause and run `sandbox apply` again; it resumes where it stopped.") from e
    changes = [s.change for s in c.steps]
    if c.gateway is not None:
        with _live_errors("reloading the Tyk gateway"):
            tyk_apply.make_live(c.gateway, changes)
    if c.admin is not None:
        with _live_errors("reading the client secrets from Keycloak"):
            changes += _store_secrets(spec, c.desired, c.admin, home)
    changes += _install_token_helper(home)
    return Report(changes, c.skipped, c.desired.counts(), time.monotonic() - t0)


def _store_secrets(spec: Spec, desired: Desired, admin: KeycloakAdmin, home: Path) -> list[Change]:
    """Client secrets go to the CLI's file and, for Airflow's account only, to Airflow's secrets backend."""
    secrets = keycloak_apply.client_secrets(admin, desired)
    clients = {f"{realm}/{cid}": value for (realm, cid), value in sorted(secrets.items())}
    airflow_vars = {secret_key(realm, cid): value for (realm, cid), value in sorted(secrets.items())
                    if cid == spec.airflow_account}
    changes = []
    for path, data, what in ((client_secrets_file(home), clients, "client secrets for the CLI"),
                             (airflow_secrets_file(home), airflow_vars, "Airflow's secrets backend")):
        text = json.dumps(data, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            write_private(path, text)
            changes.append(Change("sandbox", "update", "secrets", path.name, what))
    return changes


def _install_token_helper(home: Path) -> list[Change]:
    """Tasks import the token helper as `sandbox_auth` from the DAG folder (Airflow's venv lacks this package)."""
    target = home / "dags" / "sandbox_auth.py"
    text = Path(auth_module.__file__).read_text()
    if target.exists() and target.read_text() == text:
        return []
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return [Change("sandbox", "update", "dag-folder", target.name, "the token helper for tasks")]


def client_secret(home: Path, env: str, account: str) -> str:
    path = client_secrets_file(home)
    try:
        return json.loads(path.read_text())[f"{env}/{account}"]
    except (OSError, ValueError, KeyError) as e:
        raise SandboxError(f"No client secret is stored for {account} in {env}.",
                           "run `sandbox apply` (or `sandbox up`), and check the account and --env.") from e


def token_url(spec: Spec, endpoints: Endpoints, account: str, env: str) -> str:
    if account not in spec.accounts:
        raise SandboxError(f"No account named {account!r} in {spec.source}.",
                           f"use one of: {', '.join(spec.accounts)}.", exit_code=2)
    if env not in spec.accounts[account].environments:
        raise SandboxError(f"{account} has no client in {env!r}.",
                           f"use --env with one of: {', '.join(spec.accounts[account].environments)}.", exit_code=2)
    if why := running(endpoints, "keycloak"):
        raise SandboxError(f"No token without Keycloak: {why}.", "run `sandbox up`.")
    return f"{endpoints.url('keycloak')}/realms/{env}/protocol/openid-connect/token"
