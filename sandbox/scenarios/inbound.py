"""Scenarios on a caller's way *into* Airflow through the gateway (a CI job, a partner's webhook): the symptom is in
the caller's own call, made as a CI job makes it — a Keycloak token, one HTTP request to the gateway's Airflow
route — not in a DAG run. `sandbox doctor --caller NAME` names each."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from sandbox.commands.accounts import client_secret
from sandbox.errors import SandboxError
from sandbox.host.credentials import write_private
from sandbox.paths import SandboxPaths
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.spec import AIRFLOW_SERVICE, Grant, Spec
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.airflow.client import JWT_BEARER
from sandbox.systems.airflow.token_helper import TokenError, decode_claims
from sandbox.systems.keycloak.sign_in import LIGHTWEIGHT
from sandbox.systems.tyk.applier import EXCHANGE_REFUSED
from sandbox.systems.tyk.client import gateway_refusal

API_SERVER = ("airflow", "airflow-api-server")  # the unit that exchanges tokens (Airflow reads its settings at start)
FEDERATED = "AIRFLOW__KEYCLOAK_AUTH_MANAGER__JWT_FEDERATED_CLIENT_IDS"


@dataclass(frozen=True)
class Told:
    """What doctor is told of a caller's own call beside its walk: the Airflow token it holds (a file), what it was
    answered."""

    held_file: Path | None = None
    said: str | None = None

    def read_held(self) -> str | None:
        return self.held_file.read_text() if self.held_file and self.held_file.exists() else None


@dataclass(frozen=True)
class Probed:
    """A caller's call through the gateway: green, or the symptom it showed."""

    ok: bool
    symptom: Symptom | None
    verdict: str


def symptom_of(status: int, text: str, refusal: str | None) -> Symptom | None:
    """Which hop refused the caller's call, in its own words: the gateway (its checks, or its exchange into Airflow)
    or Airflow."""
    if status < 400:
        return None
    log = f"HTTP {status} {text[:300]}"
    if refusal is not None:
        return Symptom("exchange" if refusal.startswith(EXCHANGE_REFUSED) else "gateway", status, refusal, log)
    return Symptom("airflow", status, text[:300], log)


def caller_grant(spec: Spec, caller: str | None = None) -> Grant:
    """The grant of `caller` into Airflow, or the spec's first that names DAGs (a trigger is what the probe reads)."""
    grants = [g for g in spec.grants if g.inbound and g.dags and (caller is None or g.account == caller)]
    if not grants:
        who = f"{caller} has no" if caller else f"{spec.source} has no"
        raise SandboxError(f"{who} grant on service {AIRFLOW_SERVICE} with `dags`: the scenario needs a caller into "
                           "Airflow.", "add one (see docs/spec.md), then `sandbox apply`.", exit_code=2)
    return grants[0]


class InboundScenario(Scenario):
    """A caller's way into Airflow broken. Bound to a caller (an account granted Airflow's API), not to a
    connection: `connection` is the caller's name."""

    grant: Grant | None = None
    environments: tuple[str, ...] = ()  # the spec's, once bound

    def on(self, spec: Spec, connection: str | None = None) -> Scenario:
        try:
            grant = caller_grant(spec, connection)
        except SandboxError as e:
            raise SandboxError(f"{self.name}: {e.message}", e.fix, exit_code=e.exit_code) from None
        bound = copy.copy(self)
        bound.grant, bound.environments = grant, tuple(spec.environments)
        return bound

    @property
    def connection(self) -> str:
        return self.grant.account if self.grant else self.unbound_because

    @property
    def caller(self) -> str:
        return self.grant.account

    def told(self, paths: SandboxPaths) -> Told:
        """What doctor must be told to name the fault (nothing: the systems' own records do)."""
        return Told()

    def doctor_args(self, paths: SandboxPaths) -> list[str]:
        told = self.told(paths)
        return ["--caller", self.caller, *(["--token-file", str(told.held_file)] if told.held_file else []),
                *(["--said", told.said] if told.said else [])]

    def path(self, faulty: bool) -> tuple[str, str]:
        """The caller's call: method and path under the route. By default it reads its DAG's runs (what a CI job
        does after its trigger: no run is made by the probe)."""
        return "GET", f"/api/v2/dags/{self.grant.dags[0]}/dagRuns?limit=1"

    def scope(self, faulty: bool) -> str:
        """What the caller asks Keycloak for its token."""
        return "openid"

    def token(self, ctx: ScenarioContext, scope: str = "openid") -> str:
        realm = ctx.spec.airflow_realm
        try:  # with openid: Airflow's exchange checks the token at Keycloak's userinfo
            return ctx.token(self.caller, realm, scope)
        except TokenError as e:
            raise SandboxError(f"Keycloak gives {self.caller} no token in {realm}: {e}",
                               f"`sandbox doctor --caller {self.caller}` names why.") from e

    def probe(self, ctx: ScenarioContext, faulty: bool = False) -> Probed:
        method, path = self.path(faulty)
        url = f"{ctx.endpoints.url('tyk')}/{ctx.spec.airflow_realm}/{AIRFLOW_SERVICE}{path}"
        token = self.token(ctx, self.scope(faulty))
        r = requests.request(method, url, headers={"Authorization": f"Bearer {token}"},
                             json={"logical_date": None} if method == "POST" else None, timeout=60)
        seen = symptom_of(r.status_code, r.text, gateway_refusal(r))
        return Probed(seen is None, seen, f"{method} {path}: HTTP {r.status_code}")


class InboundWrongDag(InboundScenario):
    name = "inbound-wrong-dag"
    story = ("The CI job's config was copied from prod's: it now triggers the prod smoke DAG with its dev identity. "
             "Its grant names the dev smoke only; the gateway refuses before Airflow hears of it.")
    cause = "the caller triggers a DAG its grant into Airflow does not name"
    fix = "trigger a DAG the grant names, or add the DAG to the grant's `dags` in the spec (`sandbox apply`)"
    expected = Symptom("gateway", 403, "Access to this resource has been disallowed", "HTTP 403")
    doctor_says = "which its grant does not name"

    @property
    def other_dag(self) -> str:
        """A smoke DAG of another environment, which the grant does not name."""
        return next(f"sandbox_smoke_{e}" for e in (*self.environments, "other")
                    if f"sandbox_smoke_{e}" not in self.grant.dags)

    def path(self, faulty: bool) -> tuple[str, str]:
        return ("POST", f"/api/v2/dags/{self.other_dag}/dagRuns") if faulty else super().path(faulty)

    def inject(self, ctx: ScenarioContext) -> None:
        return None  # the fault is the caller's call: nothing in the systems changes


class LightweightAccessToken(InboundScenario):
    name = "lightweight-access-token"
    story = ("Someone turned on Keycloak's lightweight access tokens for the CI client to make its tokens smaller. "
             "Keycloak now leaves out the claims its mappers add — the audience among them — and the gateway "
             "refuses every call into Airflow.")
    cause = "the caller's client issues lightweight access tokens, which drop the audience the gateway requires"
    fix = ("turn `client.use.lightweight.access.token.enabled` off for the client, or mark its audience mapper "
           "\"add to lightweight access token\" (`sandbox apply` restores the client)")
    expected = Symptom("gateway", 401, "audience claim is required but not present in token", "HTTP 401")
    doctor_says = "lightweight access tokens"

    def inject(self, ctx: ScenarioContext) -> None:
        self._lightweight(ctx, "true")

    def revert(self, ctx: ScenarioContext) -> None:
        # apply compares only what it states of a client: the attribute it never sets is taken out here
        self._lightweight(ctx, "false")

    def _lightweight(self, ctx: ScenarioContext, value: str) -> None:
        admin = ctx.keycloak(ctx.spec.airflow_realm)
        uuid = admin.get_client_id(self.caller)
        attrs = admin.get_client(uuid).get("attributes", {})  # Keycloak replaces the attributes it is sent
        admin.update_client(uuid, {"attributes": {**attrs, LIGHTWEIGHT: value}})


class FederationNotAllowlisted(InboundScenario):
    name = "federation-not-allowlisted"
    story = ("Airflow's API server was redeployed from a hand-written airflow.cfg whose [keycloak_auth_manager] "
             "jwt_federated_client_ids lists the platform's own clients, not the CI job's. The gateway still lets the "
             "CI job's token through; Airflow refuses to exchange it, in words that do not say why.")
    cause = "the caller's client (its token's `azp`) is not in the allow-list Airflow's API server started with"
    fix = ("list the client in [keycloak_auth_manager] jwt_federated_client_ids and restart the API server (the "
           "sandbox writes the list from the spec's grants into Airflow's sign-in settings)")
    expected = Symptom("exchange", 403, f"{EXCHANGE_REFUSED} (HTTP 403)", "Invalid Keycloak assertion")
    doctor_says = "jwt_federated_client_ids"

    def inject(self, ctx: ScenarioContext) -> None:
        listed = airflow_files.auth_settings(ctx.handoff.lib, "")[FEDERATED].split(",")
        ctx.runtime.restart(*API_SERVER, {FEDERATED: ",".join(c for c in listed if c != self.caller)})

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*API_SERVER, {})  # as configured: the list the sandbox wrote


# the caller's Keycloak tokens while the fault is in: seconds, not the realm's minutes (and room for doctor's own walk
# with a token of that life, on a loaded machine)
HELD_LIFESPAN_S = 10


def held_path(paths: SandboxPaths, caller: str) -> Path:
    """Where the scenario keeps the Airflow token its caller holds (0600, like every secret of the home): `doctor
    --token-file` reads it while the fault is kept."""
    return paths.home / f".repro-held-{caller}.jwt"


class AirflowTokenOutlivesIdpToken(InboundScenario):
    name = "airflow-token-outlives-idp-token"
    story = ("The CI job asks Airflow's /auth/token for a token once, at the top of its pipeline, as the Keycloak auth "
             "manager's docs show, and keeps it as long as that token says: Airflow's last a day ([api_auth] "
             "jwt_expiration_time). The Keycloak token inside it lasts the realm's minutes; past them Airflow "
             "refuses every call with a token it still calls valid (403), because Keycloak refuses the permission "
             "check Airflow asks with the expired one. (Here the caller's Keycloak tokens last "
             f"{HELD_LIFESPAN_S} s, so the scenario does not wait minutes.)")
    cause = "the caller keeps an Airflow token past the life of the Keycloak token inside it"
    fix = ("ask Airflow for a new token when the Keycloak token's `expires_in` runs out, not Airflow's `exp`; or send "
           "the Keycloak token through the gateway's route, which exchanges it at every call")
    expected = Symptom("airflow", 403, "Forbidden", "HTTP 403")
    doctor_says = "the Keycloak token inside it expired"

    def inject(self, ctx: ScenarioContext) -> None:
        ctx.set_lifespan(ctx.spec.airflow_realm, self.caller, str(HELD_LIFESPAN_S))

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.set_lifespan(ctx.spec.airflow_realm, self.caller, "")  # the realm's again (apply restores it too)
        held_path(ctx.paths, self.caller).unlink(missing_ok=True)

    def told(self, paths: SandboxPaths) -> Told:
        return Told(held_file=held_path(paths, self.caller))

    def probe(self, ctx: ScenarioContext, faulty: bool = False) -> Probed:
        if not faulty:
            return super().probe(ctx)
        # the CI job's code: its Keycloak token exchanged at Airflow's /auth/token, Airflow's token kept, and the
        # next call made after the Keycloak token's life
        assertion = self.token(ctx)
        ends = decode_claims(assertion)["exp"]
        if ends - time.time() > 60:
            raise SandboxError(f"{self.caller}'s Keycloak tokens last {round(ends - time.time())} s: the fault is not "
                               "in place.", "`sandbox repro revert`, then run the scenario again.")
        airflow = ctx.endpoints.url("airflow")
        r = requests.post(f"{airflow}/auth/token", json={"grant_type": JWT_BEARER, "assertion": assertion}, timeout=30)
        if r.status_code != 201:
            seen = symptom_of(r.status_code, r.text, None)
            return Probed(False, seen, f"POST /auth/token: HTTP {r.status_code}")
        held = r.json()["access_token"]
        write_private(held_path(ctx.paths, self.caller), held)
        time.sleep(max(0.0, ends + 1.5 - time.time()))
        _, path = self.path(False)
        r = requests.get(f"{airflow}{path}", headers={"Authorization": f"Bearer {held}"}, timeout=30)
        seen = symptom_of(r.status_code, r.text, None)
        return Probed(seen is None, seen, f"GET {path} with the Airflow token it holds: HTTP {r.status_code}")


class M2mWrongClient(InboundScenario):
    name = "m2m-wrong-client"
    story = ("The CI job was written from the Keycloak auth manager's docs for machines: it posts grant_type "
             "client_credentials with its own client's id and secret to Airflow's /auth/token. Airflow takes those of "
             "its own client only, and answers the job as it answers a wrong secret — so its owner rotates a secret "
             "that was right, and the job still fails.")
    cause = ("Airflow's client_credentials grant accepts only the client Airflow is configured with (apache/airflow "
             "72205); the caller's own client is refused before Keycloak is asked")
    fix = ("send the caller's Keycloak token through the gateway's route, which exchanges it (the jwt-bearer grant), "
           "or exchange it yourself with that grant; never hand out Airflow's own client secret")
    expected = Symptom("airflow", 403, "Client credentials authentication failed", "HTTP 403")
    doctor_says = "takes client_credentials of its own client only"

    def inject(self, ctx: ScenarioContext) -> None:
        return None  # the fault is the caller's code: nothing in the systems changes

    def told(self, paths: SandboxPaths) -> Told:
        # what the caller was answered: a call to Airflow directly leaves no record with its identity
        return Told(said="HTTP 403 Client credentials authentication failed")

    def probe(self, ctx: ScenarioContext, faulty: bool = False) -> Probed:
        if not faulty:
            return super().probe(ctx)
        body = {"grant_type": "client_credentials", "client_id": self.caller,
                "client_secret": client_secret(ctx.paths, ctx.spec.airflow_realm, self.caller)}
        r = requests.post(f"{ctx.endpoints.url('airflow')}/auth/token", json=body, timeout=30)
        seen = symptom_of(r.status_code, r.text, None)
        return Probed(seen is None, seen, f"POST /auth/token (client_credentials of {self.caller}): HTTP "
                                          f"{r.status_code}")


class ExchangeWithoutOpenid(InboundScenario):
    name = "exchange-without-openid"
    story = ("The CI job gets its token the way every OAuth tutorial shows client credentials: grant_type and the "
             "client's id and secret, no scope. Keycloak issues it, the gateway accepts it, and Airflow refuses the "
             "exchange in the same words it uses for a client it does not trust.")
    cause = ("the token was asked without the `openid` scope: Airflow's jwt-bearer grant checks the assertion at "
             "Keycloak's userinfo endpoint, which answers only a token with `openid`")
    fix = "ask Keycloak with scope=openid (`sandbox call` and `sandbox token` do)"
    expected = Symptom("exchange", 403, f"{EXCHANGE_REFUSED} (HTTP 403)", "Invalid Keycloak assertion")
    doctor_says = "without the `openid` scope"

    def inject(self, ctx: ScenarioContext) -> None:
        return None  # the fault is the caller's token request: nothing in the systems changes

    def scope(self, faulty: bool) -> str:
        return "" if faulty else "openid"

    def told(self, paths: SandboxPaths) -> Told:
        # what the caller was answered: Airflow's words, the same for every refused assertion
        return Told(said="HTTP 403 Invalid Keycloak assertion")
