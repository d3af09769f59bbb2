"""plan/apply across the three systems: desired state from the spec, live state from the running stack.

Apply also writes what the runtime's Airflow reads (the AirflowHandoff) and the CLI's copy of the client
secrets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from keycloak.exceptions import KeycloakError

from sandbox.clients import Clients, why_not_running
from sandbox.errors import SandboxError
from sandbox.host import credentials
from sandbox.host.credentials import write_private
from sandbox.host.privacy import private_umask
from sandbox.paths import SandboxPaths
from sandbox.plan import SANDBOX_CALLER, Addresses, Desired, issuer, plan, secret_key
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.spec import Spec
from sandbox.systems.airflow import applier as airflow_apply
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.keycloak import applier as keycloak_apply
from sandbox.systems.keycloak import sign_in
from sandbox.systems.openbao import applier as vault_apply
from sandbox.systems.steps import Change, Step
from sandbox.systems.tyk import applier as tyk_apply
from sandbox.systems.tyk.client import TykGateway


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # system -> why it was not compared
    counts: dict[str, int] = field(default_factory=dict)  # objects in the plan, per kind
    seconds: float = 0.0


@dataclass
class Collected:
    desired: Desired
    steps: list[Step]
    skipped: dict[str, str]  # system -> why it was not compared
    # Airflow is read only once Keycloak holds its sign-in (the sandbox calls Airflow as a client of its realm):
    # apply compares and converges it after Keycloak's steps
    airflow_after_keycloak: bool = False


def _airflow_secrets(secrets: dict[str, str] | None) -> tuple[str | None, dict[str, str]]:
    """Airflow's client's secret and the callers' that the sandbox chose (None: not known here, plan only)."""
    if secrets is None:
        return None, {}
    return secrets["airflow_client_secret"], {SANDBOX_CALLER: secrets["airflow_caller_secret"]}


def collect(spec: Spec, endpoints: Endpoints, live: Clients, secrets: dict[str, str] | None = None,
            password_of: Callable[[str], str] | None = None) -> Collected:
    """The steps from the live systems to the spec. `secrets`: the sandbox's own (apply's; a plan compares without
    them); `password_of`: a person's password, made when first asked (apply's)."""
    desired = plan(spec, Addresses.of(endpoints))
    steps: list[Step] = []
    skipped: dict[str, str] = {}
    after_keycloak = False
    if why := why_not_running(endpoints, "keycloak"):
        skipped["keycloak"] = why
    else:
        steps += keycloak_apply.steps(live.keycloak, desired)
        new = {s.change.name for s in steps if (s.change.kind, s.change.action) == ("realm", "create")}
        client_secret, callers = _airflow_secrets(secrets)
        sign = sign_in.steps(live.keycloak, desired, endpoints.url("airflow"), client_secret, callers,
                             password_of or _no_password, desired.sign_in is not None and desired.sign_in.realm in new)
        steps += sign
        after_keycloak = bool(sign)
    if why := why_not_running(endpoints, "airflow"):
        skipped["airflow"] = why
    elif "keycloak" in skipped:
        skipped["airflow"] = "the sandbox signs in to Airflow through Keycloak, which is not running"
    elif not after_keycloak:
        steps += airflow_apply.steps(live.airflow, desired)
    if why := why_not_running(endpoints, "tyk"):
        skipped["tyk"] = why
    else:
        steps += tyk_apply.steps(live.tyk, desired)
    return Collected(desired, steps, skipped, after_keycloak)


def _passwords(paths: SandboxPaths) -> Callable[[str], str]:
    """A person's password: the one the sandbox made for them, else a new one (kept 0600 for the CLI)."""
    def of(person: str) -> str:
        known = json.loads(paths.people.read_text()) if paths.people.exists() else {}
        if person not in known:
            known[person] = credentials.new_password()
            write_private(paths.people, json.dumps(known, indent=2, sort_keys=True))
        return known[person]

    return of


def _no_password(person: str) -> str:
    raise SandboxError(f"no password for {person}: only apply makes people")


@contextmanager
def _live_errors(what: str):
    """A live system's refusal while reading or writing becomes one sentence, not a traceback."""
    try:
        yield
    except (KeycloakError, requests.RequestException) as e:
        code = getattr(e, "response_code", None) or getattr(getattr(e, "response", None), "status_code", None)
        raise SandboxError(f"{what} failed: {type(e).__name__}" + (f" (HTTP {code})" if code else "") + f": {e}",
                           "check `sandbox status` and `sandbox logs`; then run the command again.") from e


def before_start(spec: Spec, paths: SandboxPaths) -> None:
    """What the stack's components read as they start and the spec decides: Airflow's sign-in (its realm)."""
    with private_umask():
        airflow_files.write_sign_in(AirflowHandoff.of(paths).lib, plan(spec, Addresses.nowhere()))


def plan_report(spec: Spec, endpoints: Endpoints) -> Report:
    t0 = time.monotonic()
    with _live_errors("reading the live systems"):
        c = collect(spec, endpoints, Clients(endpoints))
    if c.airflow_after_keycloak:
        c.skipped["airflow"] = ("compared once Keycloak holds Airflow's sign-in, which the sandbox signs in to "
                                "Airflow with: apply makes it first, then converges Airflow")
    return Report([s.change for s in c.steps], c.skipped, c.desired.counts(), time.monotonic() - t0)


def apply(spec: Spec, endpoints: Endpoints, paths: SandboxPaths) -> Report:
    """Converge the live systems and the files Airflow reads (the sandbox's handoff under `paths`) to `spec`."""
    with private_umask():  # the secrets files and the DAG folder's files are the user's alone
        return _apply(spec, endpoints, paths, AirflowHandoff.of(paths))


def _apply(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, handoff: AirflowHandoff) -> Report:
    t0 = time.monotonic()
    live = Clients(endpoints)  # one login per system, for the diff, the steps and the secrets after
    with _live_errors("reading the live systems"):
        c = collect(spec, endpoints, live, credentials.read(paths.secrets), _passwords(paths))
    # The DAG folder first: Airflow's processor finds a new file only at its next look (every 5 s), and parses it
    # while the live steps run, so the smoke after a first apply need not wait for it.
    dag_files = _install_airflow_files(handoff, c.desired)
    endpoints.publish()
    changes = [s.change for s in c.steps]

    def reload() -> None:
        with _live_errors("reloading the Tyk gateway"):
            tyk_apply.reload(live.tyk, changes)

    run_live_steps(c.steps, None if "tyk" in c.skipped else reload,
                   lambda quiet: _forget_jwks(live.tyk, changes, quiet))
    if "airflow" not in c.skipped:
        if any(ch.name == airflow_files.SIGN_IN_FILE for ch in dag_files):
            # Airflow reads its realm and its callers when its API server starts
            endpoints.restart("airflow", "airflow-api-server")
        if c.airflow_after_keycloak:  # the sandbox can sign in to Airflow now, in the realm the spec says
            with _live_errors("converging Airflow's connections"):
                api = live.sign_in_to_airflow(issuer(endpoints.url("keycloak"), c.desired.sign_in.realm))
                after = airflow_apply.steps(api, c.desired)
            _run_steps(after)
            changes += [s.change for s in after]
    if "keycloak" not in c.skipped:
        changes += distribute_secrets(spec, endpoints, paths, live, c.desired, c.skipped)
    if "airflow" not in c.skipped:
        with _live_errors("asking Airflow to re-parse the sandbox's DAGs"):
            for ch in dag_files:  # the smoke follows the spec at once
                if ch.name in airflow_files.REPARSE:
                    live.airflow.reparse(airflow_files.REPARSE[ch.name])
    changes += dag_files
    return Report(changes, c.skipped, c.desired.counts(), time.monotonic() - t0)


def run_live_steps(steps: list[Step], reload: Callable[[], None] | None, settle: Callable[[bool], None]) -> None:
    """Keycloak's steps (realms and clients on a JVM that has often just started: the slowest) beside the others and
    then `reload` (the gateway's): no connection or route waits for a realm (a connection holds the route; the
    secrets follow from Keycloak after). Each system's own steps keep their order. Once both sides are done, and
    only after a reload, `settle(keycloak_failed)`. Keycloak's failure is the one raised, as when its steps ran
    first; the other side's, if any, is chained to it."""
    reloaded = False
    with ThreadPoolExecutor(max_workers=1) as pool:
        realms = pool.submit(_run_steps, [s for s in steps if s.change.system == "keycloak"])
        try:
            _run_steps([s for s in steps if s.change.system != "keycloak"])
            if reload is not None:
                reload()
                reloaded = True
        finally:
            failed = realms.exception()  # waits for Keycloak's side, whatever happened here
            if reloaded:
                settle(failed is not None)
            if failed is not None:
                raise failed


def _forget_jwks(tyk: TykGateway, changes: list[Change], quiet: bool) -> None:
    """The changed APIs' JWKS caches go once the gateway serves them — even when Keycloak's side failed: the next
    apply finds those APIs as the spec says and would not drop them again. Quiet: an error here would hide
    Keycloak's, which is the one to tell."""
    try:
        with _live_errors("reloading the Tyk gateway"):
            tyk_apply.forget_jwks(tyk, changes)
    except SandboxError:
        if not quiet:
            raise


def _run_steps(steps: list[Step]) -> None:
    for step in steps:
        try:
            step.run()
        except SandboxError:
            raise
        except Exception as e:  # a live system said no: name the change that failed
            ch = step.change
            raise SandboxError(f"{ch.system}: {ch.action} {ch.kind} {ch.name} failed: {e}",
                               "fix the cause and run `sandbox apply` again; it resumes where it stopped.") from e


def distribute_secrets(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, live: Clients, desired: Desired,
                       skipped: dict[str, str]) -> list[Change]:
    """Every client's current secret, read from Keycloak, written where its readers read it: the vault (Airflow's
    processes, and every account's) and the CLI's file. Only what changed is written (apply, and rotate)."""
    with _live_errors("reading the client secrets from Keycloak"):
        secrets = keycloak_apply.client_secrets(live.keycloak, desired)
    changes = _store_secrets(secrets, paths)
    if why := why_not_running(endpoints, "openbao"):
        skipped["openbao"] = why
    else:  # the vault's refusals are SandboxErrors in OpenBao's words already (sandbox.systems.openbao.client)
        changes += vault_apply.store(
            live.vault, {secret_key(realm, cid): v for (realm, cid), v in secrets.items()
                         if cid == spec.airflow_account},
            {f"{realm}/{cid}": v for (realm, cid), v in secrets.items()})
    return changes


def _store_secrets(secrets: dict[tuple[str, str], str], paths: SandboxPaths) -> list[Change]:
    """Every client secret goes to the CLI's file (Airflow's account's go to the vault, `vault_apply.store`)."""
    clients = {f"{realm}/{cid}": value for (realm, cid), value in sorted(secrets.items())}
    text = json.dumps(clients, indent=2, sort_keys=True)
    if paths.client_secrets.exists() and paths.client_secrets.read_text() == text:
        return []
    write_private(paths.client_secrets, text)
    return [Change("sandbox", "update", "secrets", paths.client_secrets.name, "client secrets for the CLI")]


def _install_airflow_files(handoff: AirflowHandoff, desired: Desired) -> list[Change]:
    """The lib folder's code and routes, and the DAG folder's files; what moved out of the DAG folder is removed."""
    lib = airflow_files.lib_files(desired)
    written = [Change("sandbox", "update", "airflow-lib", name, what)
               for name, what in airflow_files.write_changed(handoff.lib, lib)]
    written += [Change("sandbox", "update", "dag-folder", name, what)
                for name, what in airflow_files.write_changed(handoff.dag_folder, airflow_files.dag_files(desired))]
    for name in airflow_files.MOVED_FROM_DAG_FOLDER:
        if (handoff.dag_folder / name).exists():
            (handoff.dag_folder / name).unlink()
            written.append(Change("sandbox", "delete", "dag-folder", name, "moved to the lib folder"))
    for name in airflow_files.SCENARIO_LEFTOVERS:  # a team's own file of that name is not ours to delete
        path = handoff.dag_folder / name
        if path.exists() and path.read_text() == lib[name][0]:
            path.unlink()
            written.append(Change("sandbox", "delete", "dag-folder", name, "kept in the lib folder"))
    return written
