"""`sandbox doctor`: walk one connection's path hop by hop, without changing anything, and name the cause.

Hops: connection (where Airflow resolves it, and whether it matches the spec) -> secret (in the secrets
backend) -> token (Keycloak) -> claims (what the gateway will check) -> gateway -> upstream. Each system's
folder holds what its hops look at and how they are judged (`systems/<name>/doctor.py`); this is the walk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from sandbox.clients import Clients, why_not_running
from sandbox.errors import SandboxError, use_one_of
from sandbox.plan import Addresses, AirflowConnection, Desired, TykApi, plan
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.spec import Spec
from sandbox.systems.airflow import doctor as airflow_doctor
from sandbox.systems.airflow.doctor import Seen, judge_connection, stale_tokens
from sandbox.systems.airflow.token_helper import ClientCredentialsAuth, TokenError, decode_claims, decode_header
from sandbox.systems.checks import Diagnosis, Hop, Judged
from sandbox.systems.keycloak.doctor import check_claims, judge_claims, judge_token
from sandbox.systems.openbao import team_backend as team_vault
from sandbox.systems.openbao.doctor import judge_secret, vault_secret
from sandbox.systems.tyk import doctor as gateway


def as_components_call(endpoints: Endpoints, url: str) -> tuple[str, dict[str, str]]:
    """Where the host reaches a URL the components use, and the Host header they send with it (Keycloak derives
    `iss` from it when its hostname is not fixed): doctor checks from the host what a task sees inside."""
    host_url = endpoints.to_host(url)
    return host_url, ({"Host": urlsplit(url).netloc} if host_url != url else {})


# ---- the hops: each gathers what it looks at, then a judge of plain data says the hop and the verdict --------------
@dataclass
class Walk:
    """One connection's walk: what doctor was given, the diagnosis so far, and what the hops pass on."""

    desired: Desired
    endpoints: Endpoints
    clients: Clients
    handoff: AirflowHandoff
    want: AirflowConnection
    d: Diagnosis
    secret: str | None = None
    token: str = ""
    claims_ok: bool = True

    def add(self, judged: Judged) -> None:
        """Record a hop; the first verdict stands."""
        hop, verdict = judged
        self.d.hops.append(hop)
        self.d.verdict = self.d.verdict or verdict or ""


def _connection_hop(w: Walk) -> bool:
    """Where Airflow's processes resolve it, and the metastore and routes file against the spec."""
    try:
        r = w.clients.airflow.call("GET", f"/connections/{w.want.conn_id}", ok404=True)
    except SandboxError as e:  # Airflow refused the sandbox itself: what it holds is unknown, not missing
        w.add((Hop("connection", False, f"not read: {e.message}"),
               f"The sandbox could not read {w.want.conn_id} from Airflow: {e}"))
        return True
    live = None if r.status_code == 404 else r.json()
    environs = airflow_doctor.airflow_environs(w.endpoints)
    team = team_vault.configured(environs)
    got = team_vault.read(team, w.want.conn_id, lambda url: as_components_call(w.endpoints, url)) if team else None
    w.add(judge_connection(Seen(w.want, live, environs, w.handoff, team, got)))
    return True  # a connection that differs from the spec is walked on: the later hops say what it does


def _secret_hop(w: Walk) -> bool:
    w.secret, refused = vault_secret(w.endpoints, w.handoff, w.want.secret_key)
    try:
        stale = stale_tokens(w.clients.airflow.call("GET", "/variables", params={"limit": 1000}).json()["variables"],
                             w.want.client_id, api_of(w.desired, w.want).issuer, time.time())
    except SandboxError:
        stale = []
    w.add(judge_secret(w.want, w.secret, stale, refused))
    return w.secret is not None


def task_token(endpoints: Endpoints, want: AirflowConnection, secret: str) -> str:
    """A client-credentials token for the connection, asked where a task asks it (the components' token URL, reached
    from the host with their Host header). Raises TokenError."""
    token_url, host_header = as_components_call(endpoints, want.token_url)
    session = requests.Session()
    session.headers.update(host_header)
    return ClientCredentialsAuth(token_url, want.client_id, secret, want.scope, session=session).token()


def _token_hop(w: Walk) -> bool:
    t0 = time.monotonic()
    error = None
    try:
        w.token = task_token(w.endpoints, w.want, w.secret)
    except TokenError as e:
        error = e
    w.add(judge_token(w.want, error, (time.monotonic() - t0) * 1000))
    return error is None


def _claims_hop(w: Walk) -> bool:
    claims = decode_claims(w.token)
    route = api_of(w.desired, w.want)  # what the gateway's API trusts: its issuer, its JWKS
    try:
        kids = {k["kid"] for k in requests.get(w.endpoints.to_host(route.jwks_url), timeout=10).json()["keys"]}
    except (requests.RequestException, ValueError, KeyError):
        kids = set()
    lifespan = next((r.access_token_lifespan for r in w.desired.realms if r.realm == w.want.env), None)
    problems = check_claims(claims, w.want, route.issuer, kids, decode_header(w.token).get("kid"), time.time(),
                            lifespan)
    w.claims_ok = not problems
    w.add(judge_claims(w.want, claims, route.issuer, problems))
    return True  # the gateway's own answer says whether it refuses


def _gateway_hop(w: Walk) -> bool:
    """Its API and policy as the spec says, and a real call with this token."""
    if w.endpoints.components["tyk"].state == "disabled":
        w.d.hops.append(Hop("gateway", None, "not checked: tyk is left out"))
    elif why := why_not_running(w.endpoints, "tyk"):
        w.add((Hop("gateway", False, why), f"The gateway is down ({why}). Fix: `sandbox up` restarts it."))
    else:
        api = api_of(w.desired, w.want)
        pol = next((p for p in w.desired.policies if p.api_id == api.api_id and p.account == w.want.client_id), None)
        w.d.hops.append(gateway.gateway_hop(w.d, api, pol, w.endpoints, w.clients.tyk, lambda: w.clients.redis,
                                            w.want, w.token, w.claims_ok))
    return True


# The hops in the order a task's call takes them; a hop that returns False ends the walk (the rest unchecked).
HOP_CHECKS: tuple[Callable[[Walk], bool], ...] = (_connection_hop, _secret_hop, _token_hop, _claims_hop,
                                                  _gateway_hop)


def diagnose(desired: Desired, endpoints: Endpoints, live_clients: Clients, handoff: AirflowHandoff,
             want: AirflowConnection) -> Diagnosis:
    w = Walk(desired, endpoints, live_clients, handoff, want, Diagnosis(want.conn_id))
    for check in HOP_CHECKS:
        if not check(w):
            break
    return _finish(w.d, desired, endpoints, want)


def api_of(desired: Desired, want: AirflowConnection) -> TykApi:
    """The gateway API behind a connection."""
    return next(a for a in desired.apis if a.env == want.env and a.service == want.service)


HOPS = ("connection", "secret", "token", "claims", "gateway", "upstream")


def _finish(d: Diagnosis, desired: Desired, endpoints: Endpoints, want: AirflowConnection) -> Diagnosis:
    """Mark the hops after a failure as unchecked, check the upstream directly, and word the verdict."""
    done = {h.name for h in d.hops}
    for name in HOPS[:-1]:
        if name not in done:
            d.hops.append(Hop(name, None, "not checked: an earlier hop failed"))
    api = api_of(desired, want)
    try:
        r = requests.get(endpoints.to_host(api.upstream_url), timeout=10)
        d.hops.append(Hop("upstream", r.status_code < 500, f"GET {api.upstream_url}: HTTP {r.status_code}"))
    except requests.RequestException as e:
        d.hops.append(Hop("upstream", False, f"GET {api.upstream_url}: {type(e).__name__}"))
        d.verdict = d.verdict or f"The upstream of {want.service} does not answer. Fix: `sandbox up`."
    if not d.verdict:
        unchecked = [h.name for h in d.hops if h.ok is None]
        d.verdict = "Every checked hop is healthy" + (f" (not checked: {', '.join(unchecked)})." if unchecked else ".")
    return d


def run(spec: Spec, endpoints: Endpoints, handoff: AirflowHandoff, env: str | None = None,
        connection: str | None = None, log_lines: Callable[[str], list[str]] = lambda _: [],
        service: str | None = None) -> list[Diagnosis]:
    """Diagnose the spec's connections (optionally one environment or one connection). A partly-down Airflow is
    diagnosed first (which service, why); its connections are walked too when its API server answers."""
    first: list[Diagnosis] = []
    for name in ("airflow", "keycloak"):
        if not (why := why_not_running(endpoints, name)):
            continue
        if name == "airflow" and endpoints.components[name].state in ("running", "crashed"):
            diagnosis, answers = airflow_doctor.airflow_down(endpoints, log_lines)
            first.append(diagnosis)
            if answers:
                continue
            return first
        raise SandboxError(f"doctor needs {name}, and {why}.", "run `sandbox up`, then `sandbox doctor` again.")
    desired = plan(spec, Addresses.of(endpoints))
    conns = [c for c in desired.connections if (env is None or c.env == env) and (connection is None or
             c.conn_id == connection) and (service is None or c.service == service)]
    if not conns:
        known = [c.conn_id for c in desired.connections]
        what = " ".join(filter(None, (connection, service and f"of {service}")))
        raise SandboxError(f"No connection {what} in {env or 'any environment'} in {spec.source}.".replace(
            "  ", " "), use_one_of(connection or "", known), exit_code=2)
    live_clients = Clients(endpoints, allow_unhealthy={"airflow"} if first else set())
    return first + [diagnose(desired, endpoints, live_clients, handoff, c) for c in conns]
