"""`sandbox doctor`: walk one connection's path hop by hop, without changing anything, and name the cause.

Hops: connection (where Airflow resolves it, and whether it matches the spec) -> secret (in the secrets
backend) -> token (Keycloak) -> claims (what the gateway will check) -> gateway -> upstream.
"""

from __future__ import annotations

import ast
import netrc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import redis
import requests

from sandbox.clients import Clients, why_not_running
from sandbox.commands.call import gateway_refusal
from sandbox.errors import SandboxError, use_one_of
from sandbox.plan import Addresses, AirflowConnection, Desired, TykApi, plan
from sandbox.runtime import crash
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.spec import Spec
from sandbox.systems.airflow import applier as airflow_apply
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.airflow.component import HEALTH_KEYS, Airflow
from sandbox.systems.airflow.token_helper import (
    ROUTES_FILE,
    ClientCredentialsAuth,
    TokenError,
    decode_claims,
    decode_header,
    routes,
)
from sandbox.systems.openbao import team_backend as team_vault
from sandbox.systems.openbao.client import Vault, VaultError
from sandbox.systems.tyk.applier import SCHEME, api_payload, differences, policy_payload

CLOCK_SKEW = 30  # seconds of clock difference a gateway typically tolerates


@dataclass
class Hop:
    name: str
    ok: bool | None  # None: not checked
    detail: str


@dataclass
class Diagnosis:
    connection: str
    hops: list[Hop] = field(default_factory=list)
    verdict: str = ""

    @property
    def ok(self) -> bool:
        return all(h.ok is not False for h in self.hops)


def env_var_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def shadowing(conn_id: str, environs: dict[str, dict[str, str]]) -> list[str]:
    """Which Airflow processes carry an AIRFLOW_CONN_ variable for `conn_id` (it wins over the metastore)."""
    return sorted(proc for proc, env in environs.items() if env_var_name(conn_id) in env)


def airflow_environs(endpoints: Endpoints) -> dict[str, dict[str, str]]:
    if (declared := endpoints.environs()) is not None:
        return declared
    out = {}
    for pid in endpoints.components["airflow"].pids:
        try:
            p = psutil.Process(pid)
            for q in [p, *p.children(recursive=True)]:
                out[f"{q.pid} {process_label(q.cmdline(), q.name())}"] = q.environ()
        except psutil.Error:
            continue
    return out


def process_label(cmdline: list[str], name: str) -> str:
    """How doctor names an Airflow process: its command (`…/airflow scheduler`), or for a service forked by the
    launcher (whose command line all four share) the name the service took (`scheduler`)."""
    if cmdline[1:3] == ["-m", airflow_files.SERVICES_MODULE]:
        return name
    return " ".join(cmdline[1:3])


def proxied(url: str, environs: dict[str, dict[str, str]]) -> list[str]:
    """Which Airflow processes would send a request for `url` through a proxy (requests' rules: the scheme's
    proxy variable, lower case first, unless NO_PROXY lists the host, the host:port or a parent domain)."""
    parts = urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme
    out = []
    for proc, env in environs.items():
        proxy = next((env[k] for k in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
                      if env.get(k)), None)
        if not proxy:
            continue
        no = [h.strip().lstrip(".") for h in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(",")]
        if any(h == "*" or h in (host, f"{host}:{parts.port}") or host.endswith("." + h) for h in no if h):
            continue
        out.append(f"{proc} via {proxy}")
    return sorted(out)


ROLES = ("triggerer", "scheduler", "dag-processor", "api-server", "task pods")  # task pods: a cluster's executor


def role(proc: str) -> str:
    """`<pid> <args>` of an Airflow process -> what it is ("the triggerer", ...)."""
    return next((f"the {r}" for r in ROLES if r in proc), f"process {proc}")


def without_backend(environs: dict[str, dict[str, str]]) -> list[str]:
    """Airflow processes that do not load the sandbox's secrets backend: their connections come without the
    credential. (A process that rewrote its title reads an empty environment: not judged.)"""
    return sorted({role(proc) for proc, env in environs.items()  # Airflow's own, not what a task started
                   if env and any(r in proc for r in ROLES)
                   and env.get(airflow_files.BACKEND_SETTING) != airflow_files.BACKEND})


def triggerer_cannot_import(dag_folder: Path) -> list[tuple[str, str]]:
    """(file, class) of auth and trigger classes defined in the DAG folder: a deferred task hands them to the
    triggerer by dotted path, and the triggerer does not import from the DAG folder."""
    found = []
    for path in sorted(dag_folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(b).endswith(("Trigger", "Auth", "AuthBase")) for b in node.bases):
                found.append((path.name, node.name))
    return found


def netrc_login(home: Path, url: str) -> str | None:
    """The login a ~/.netrc in `home` holds for `url`'s host: requests sends it as Basic auth whenever a request
    has no auth of its own, replacing a bearer header set by hand."""
    path = home / ".netrc"
    if not path.exists():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(urlsplit(url).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return "(unreadable entry)"
    return entry[0] if entry else None


def stale_tokens(variables: list[dict], client_id: str, issuer: str, now: float) -> list[tuple[str, int]]:
    """Airflow Variables that hold an expired access token of `client_id` from `issuer` (a token cached without
    its expiry): (key, seconds since it expired)."""
    out = []
    for v in variables:
        value = str(v.get("value") or "")
        claims = decode_claims(value) if value.count(".") == 2 else {}
        if claims.get("azp") == client_id and claims.get("iss") == issuer and claims.get("exp", now) < now:
            out.append((v["key"], round(now - claims["exp"])))
    return out


def check_claims(claims: dict, want: AirflowConnection, issuer: str, realm_kids: set[str], kid: str | None,
                 now: float, lifespan: int | None = None) -> list[str]:
    """What the gateway would refuse in these claims (empty when nothing)."""
    problems = []
    if claims.get("exp", 0) + CLOCK_SKEW < now:
        problems.append(f"token expired {now - claims['exp']:.0f}s ago")
    if claims.get("iat", 0) > now + 1:  # the gateway allows no skew: a token from the future is refused
        problems.append(f"iat is {claims['iat'] - now:.0f}s in the future: the IdP's clock is ahead of this one")
    if claims.get("iss") != issuer:
        problems.append(f"iss is {claims.get('iss')!r}, the gateway trusts {issuer!r}")
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else (aud or [])
    if want.audience not in auds:
        problems.append(f"aud {auds} lacks {want.audience!r}")
    missing = sorted(set(want.scope.split()) - set(str(claims.get("scope", "")).split()))
    if missing:
        problems.append(f"scope lacks {' '.join(missing)}")
    if kid is not None and kid not in realm_kids:
        problems.append(f"kid {kid} is not among the realm's current keys")
    if lifespan and {"exp", "iat"} <= claims.keys() and claims["exp"] - claims["iat"] != lifespan:
        problems.append(f"the token lives {claims['exp'] - claims['iat']}s, the spec says {lifespan}s "
                        "(a lifespan override on the client)")
    return problems


def follows_request_host(iss: str | None, token_url: str, trusted: str) -> bool:
    """Whether `iss` names the address the token was fetched at rather than the issuer the gateway trusts: what
    Keycloak does when its hostname is not fixed (a container fetching at keycloak:8080, the host at 127.0.0.1)."""
    got, asked, want = urlsplit(iss or ""), urlsplit(token_url), urlsplit(trusted)
    return bool(iss) and got.netloc == asked.netloc and got.netloc != want.netloc and got.path == want.path


def as_components_call(endpoints: Endpoints, url: str) -> tuple[str, dict[str, str]]:
    """Where the host reaches a URL the components use, and the Host header they send with it (Keycloak derives
    `iss` from it when its hostname is not fixed): doctor checks from the host what a task sees inside."""
    host_url = endpoints.to_host(url)
    return host_url, ({"Host": urlsplit(url).netloc} if host_url != url else {})


def claims_fix(problem: str) -> str:
    if "in the future" in problem:
        return "sync the clocks (NTP) of the IdP and the gateway"
    return "`sandbox apply` restores the client's scopes, audience mapper and lifespan"


@dataclass
class Seen:
    """What the connection hop looks at: the connection wanted, the metastore's copy (None: missing), the Airflow
    processes' environments, and the folders Airflow reads."""

    want: AirflowConnection
    live: dict | None
    environs: dict[str, dict[str, str]]
    handoff: AirflowHandoff
    team: team_vault.TeamBackend | None = None  # a [secrets] backend the team set in Airflow's environment
    team_read: team_vault.VaultRead | None = None  # its read of the connection, repeated from the host


Finding = tuple[str, str] | None  # (the hop's detail, the verdict with its fix)


def _proxied(s: Seen) -> Finding:
    proxies = proxied(s.want.token_url, s.environs) + proxied(s.want.url, s.environs)
    if not proxies:
        return None
    host = urlsplit(s.want.url).hostname
    procs = len({p.split(" via ")[0] for p in proxies})
    return (f"calls to {host} go through a proxy: {proxies[0]}",
            f"Airflow's tasks send {s.want.conn_id}'s calls (token and gateway) through a proxy: HTTP_PROXY/"
            f"HTTPS_PROXY is set in {procs} process(es) and NO_PROXY does not list {host}. Fix: add {host} to "
            "NO_PROXY where the workers run (or unset the proxy) and restart them.")


def _shadowed(s: Seen) -> Finding:
    shadows = shadowing(s.want.conn_id, s.environs)
    if not shadows:
        return None
    var = env_var_name(s.want.conn_id)
    return (f"{var} is set in {len(shadows)} Airflow process(es) ({shadows[0]}); tasks use it, the UI shows the "
            "metastore",
            f"{s.want.conn_id} is shadowed by the environment variable {var}: tasks do not use the connection "
            "everyone sees. Fix: unset it where Airflow runs and restart Airflow.")


def _without_backend(s: Seen) -> Finding:
    bare = without_backend(s.environs)
    if not bare:
        return None
    who = ", ".join(bare)
    do = "do" if len(bare) > 1 or bare[0].endswith("pods") else "does"
    return (f"{who}: {airflow_files.BACKEND_SETTING} is not {airflow_files.BACKEND}",
            f"{who[0].upper()}{who[1:]} {do} not load the sandbox's secrets backend: {s.want.conn_id} comes "
            "without its credential there, and a deferred call's auth_type is dropped by HttpAsyncHook (it applies "
            f"one only with a login). Fix: give it the workers' [workers] secrets_backend ({airflow_files.BACKEND}) "
            "and restart it.")


def _unimportable(s: Seen) -> Finding:
    found = triggerer_cannot_import(s.handoff.dag_folder)
    if not found:
        return None
    file, cls = found[0]
    return (f"{file} in the DAG folder defines {cls}, which the triggerer cannot import",
            f"{file} in the DAG folder defines {cls}: a deferred task that names it (an HttpOperator's auth_type, a "
            "trigger) fails, because the triggerer imports it by its dotted path and the DAG folder is not on its "
            f"path. Fix: move it to a module every Airflow process imports (an installed package, or the lib folder "
            f"{s.handoff.lib}).")


def _team_backend(s: Seen) -> Finding:
    return team_vault.judge(s.want.conn_id, s.team, s.team_read, (s.live or {}).get("host"))


def _missing(s: Seen) -> Finding:
    if s.live is not None:
        return None
    return "not in Airflow's metastore", f"{s.want.conn_id} does not exist in Airflow. Fix: `sandbox apply`."


def _netrc(s: Seen) -> Finding:
    user = netrc_login(s.handoff.home, s.want.url)
    if not user:
        return None
    host = urlsplit(s.want.url).hostname
    return (f"~/.netrc of Airflow's workers has login {user!r} for {host}",
            f"Airflow's workers have a ~/.netrc entry for {host} ({s.handoff.home / '.netrc'}): a task that sets the "
            "Authorization header itself gets it replaced by the entry's Basic credentials. Fix: remove the entry, "
            "or give the hook auth_type=SandboxAuth.")


def _login(s: Seen) -> Finding:
    if not (s.live or {}).get("login"):
        return None
    return (f"login {s.live['login']!r} is set",
            f"{s.want.conn_id} has a login, so Airflow's HTTP hook sends Basic auth and silently drops the Bearer "
            "token. Fix: clear the login (`sandbox apply`).")


def _drift(s: Seen) -> Finding:
    drift = airflow_apply.differences(s.live or {}, airflow_apply.connection_body(s.want))
    if not drift:
        return None
    return (f"differs from the spec: {', '.join(drift)}",
            f"{s.want.conn_id} differs from the spec ({', '.join(drift)}). Fix: `sandbox apply`.")


def _route_drift(s: Seen) -> Finding:
    route = _routes(s.handoff).get(s.want.conn_id)
    drift = sorted(k for k, v in s.want.route().items() if (route or {}).get(k) != v)
    if not drift:
        return None
    what = "has no entry" if route is None else f"differs from the spec: {', '.join(drift)}"
    return (f"{ROUTES_FILE} {what}",
            f"{s.want.conn_id}'s entry in {ROUTES_FILE} {what}, so tasks get their token from the wrong place. "
            "Fix: `sandbox apply` rewrites the file.")


# in this order: the first finding is the connection hop's verdict
CONNECTION_CHECKS: tuple[Callable[[Seen], Finding], ...] = (
    _proxied, _shadowed, _without_backend, _team_backend, _missing, _netrc, _login, _drift, _route_drift, _unimportable)


# ---- the hops: each gathers what it looks at, then a judge of plain data says the hop and the verdict --------------
Judged = tuple[Hop, str | None]  # the hop, and the verdict with its fix when it names a cause


def judge_connection(seen: Seen) -> Judged:
    found = next((f for check in CONNECTION_CHECKS if (f := check(seen))), None)
    if found:
        return Hop("connection", False, found[0]), found[1]
    return Hop("connection", True, f"metastore and {ROUTES_FILE} match the spec ({seen.want.url})"), None


def judge_secret(want: AirflowConnection, secret: str | None, stale: list[tuple[str, int]],
                 refused: str | None = None) -> Judged:
    """The client secret as a task reads it (from the vault, with Airflow's token), and tokens a DAG stored in
    Variables that have expired since. `refused`: the vault's words when it would not answer Airflow."""
    if refused:
        return Hop("secret", False, refused), (
            f"The vault did not give Airflow {want.client_id}'s client secret: {refused.rstrip('.')}. Fix: `sandbox "
            "up` (it restarts a stopped or sealed vault and renews or remakes Airflow's vault token), then `sandbox "
            "apply`.")
    if stale and secret is not None:
        key, age = stale[0]
        return Hop("secret", False, f"Variable {key} holds a token that expired {age}s ago"), (
            f"Airflow Variable {key} holds an access token that expired {age}s ago: a task reusing it gets HTTP 401 "
            "\"token has expired\". Fix: refresh tokens before they expire (auth_type=SandboxAuth does) and delete "
            "the Variable.")
    if secret is None:
        return Hop("secret", False, f"{want.secret_key} is missing"), (
            f"No client secret for {want.client_id} in the vault. Fix: `sandbox apply`.")
    return Hop("secret", True, f"{want.secret_key} in the vault" if secret else
               f"{want.secret_key} is missing"), None


def judge_token(want: AirflowConnection, error: TokenError | None, ms: float) -> Judged:
    if error is None:
        return Hop("token", True, f"{want.client_id} in {want.env} ({ms:.0f} ms)"), None
    if error.status == 400 and "invalid_scope" in str(error):
        verdict = (f"Keycloak will not grant {want.client_id} the scopes its connection asks for ({want.scope}): the "
                   "client lacks one of them. Fix: `sandbox apply` restores the client's scopes.")
    elif error.status == 401:
        verdict = (f"Keycloak refuses {want.client_id}'s secret: it was rotated in Keycloak and Airflow still has the "
                   "old one. Fix: `sandbox apply` redistributes it.")
    else:
        verdict = f"Keycloak refused a token for {want.client_id} ({error}). Fix: `sandbox apply`."
    return Hop("token", False, str(error)), verdict


def judge_claims(want: AirflowConnection, claims: dict, issuer: str, problems: list[str]) -> Judged:
    """`problems`: what `check_claims` found against what the gateway checks (`issuer`: the one it trusts)."""
    hop = Hop("claims", not problems, "; ".join(problems) or
              f"iss, aud {want.audience}, scope {want.scope or '(none)'}, kid current")
    if follows_request_host(claims.get("iss"), want.token_url, issuer):  # before the generic issuer verdict
        return hop, (
            f"Keycloak's hostname is not fixed: {want.client_id}'s tokens, fetched at "
            f"{urlsplit(want.token_url).netloc} (as Airflow's tasks reach it), carry iss {claims.get('iss')}, "
            f"while the gateway trusts {issuer} (the address the host uses). Fix: fix Keycloak's hostname to "
            "the host's URL (KC_HOSTNAME or --hostname, which the sandbox sets; `sandbox repro revert` restores it), "
            "so every token carries one issuer wherever it was fetched.")
    if problems:
        return hop, (f"The gateway would refuse {want.client_id}'s token in {want.env}: {problems[0]}. "
                     f"Fix: {claims_fix(problems[0])}.")
    return hop, None


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
        live = w.clients.airflow.call("GET", f"/connections/{w.want.conn_id}").json()
    except SandboxError:
        live = None
    environs = airflow_environs(w.endpoints)
    team = team_vault.configured(environs)
    got = team_vault.read(team, w.want.conn_id, lambda url: as_components_call(w.endpoints, url)) if team else None
    w.add(judge_connection(Seen(w.want, live, environs, w.handoff, team, got)))
    return True  # a connection that differs from the spec is walked on: the later hops say what it does


def _vault_secret(w: Walk) -> tuple[str | None, str | None]:
    """The client secret as Airflow's processes read it: from the vault, with Airflow's own token."""
    if "openbao" not in w.endpoints.components:
        return None, "the sandbox runs no vault"
    try:
        token = w.handoff.vault_token.read_text().strip()
    except OSError:
        return None, f"Airflow's vault token {w.handoff.vault_token} is missing"
    try:
        found = Vault(w.endpoints.url("openbao"), token).kv_get(f"variables/{w.want.secret_key}")
    except VaultError as e:
        return None, e.message
    return (found or {}).get("value"), None


def _secret_hop(w: Walk) -> bool:
    w.secret, refused = _vault_secret(w)
    try:
        stale = stale_tokens(w.clients.airflow.call("GET", "/variables", params={"limit": 1000}).json()["variables"],
                             w.want.client_id, api_of(w.desired, w.want).issuer, time.time())
    except SandboxError:
        stale = []
    w.add(judge_secret(w.want, w.secret, stale, refused))
    return w.secret is not None


def _token_hop(w: Walk) -> bool:
    t0 = time.monotonic()
    token_url, host_header = as_components_call(w.endpoints, w.want.token_url)
    session = requests.Session()
    session.headers.update(host_header)
    error = None
    try:
        w.token = ClientCredentialsAuth(token_url, w.want.client_id, w.secret, w.want.scope, session=session).token()
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


def _gateway_hop_of(w: Walk) -> bool:
    """Its API and policy as the spec says, and a real call with this token."""
    w.d.hops.append(_gateway_hop(w.d, w.desired, w.endpoints, w.clients, w.want, w.token, w.claims_ok))
    return True


# The hops in the order a task's call takes them; a hop that returns False ends the walk (the rest unchecked).
HOP_CHECKS: tuple[Callable[[Walk], bool], ...] = (_connection_hop, _secret_hop, _token_hop, _claims_hop,
                                                  _gateway_hop_of)


def diagnose(desired: Desired, endpoints: Endpoints, live_clients: Clients, handoff: AirflowHandoff,
             want: AirflowConnection) -> Diagnosis:
    w = Walk(desired, endpoints, live_clients, handoff, want, Diagnosis(want.conn_id))
    for check in HOP_CHECKS:
        if not check(w):
            break
    return _finish(w.d, desired, endpoints, want)


# Tyk's words for a refusal -> (cause, fix); the first fragment found in the gateway's error wins.
GATEWAY_CAUSES = (
    ("token has expired", "the token had expired when the gateway saw it",
     "fetch a fresh token per call (the token helper refreshes at 80 % of its life); check the machines' clocks"),
    ("no matching policy found in scope claim", "none of the token's scopes is mapped to a policy of this API",
     "grant the service to the account in the spec, then `sandbox apply`"),
    ("Access to this API has been disallowed", "the policy the token maps to does not grant this API",
     "`sandbox apply` restores the policy's access rights"),
    ("Rate Limit Exceeded", "the policy's rate limit is used up", "wait for the window, or raise the grant's rate"),
    ("Quota exceeded", "the policy's quota is used up", "wait for its renewal, or raise the grant's quota"),
    ("audience", "the token does not carry the gateway's audience",
     "`sandbox apply` restores the client's audience mapper"),
    ("issuer claim", "the token's issuer is not the one the API trusts (fetched through another host name?)",
     "fetch tokens through the issuer URL the gateway trusts; Keycloak's --hostname fixes it"),
    ("could not apply", "a policy the token's scopes map to is missing from the gateway",
     "`sandbox apply` re-creates it"),
    ("Authorization field missing", "no bearer token reached the gateway",
     "send `Authorization: Bearer <token>` (a `login` on the connection replaces it with Basic auth)"),
    ("", "the gateway could not verify the token (signature, key id, issuer or audience)",
     "compare the claims hop with the API's issuer and audience; after a key rotation, "
     "`DELETE /tyk/cache/jwks/<api>` or wait for the JWKS cache to expire"),
)


def explain_refusal(words: str) -> tuple[str, str]:
    return next((cause, fix) for fragment, cause, fix in GATEWAY_CAUSES if fragment.lower() in words.lower())


def _gateway_hop(d: Diagnosis, desired: Desired, endpoints: Endpoints, live_clients: Clients,
                 want: AirflowConnection, token: str, claims_ok: bool) -> Hop:
    tyk = endpoints.components["tyk"]
    if tyk.state == "disabled":
        return Hop("gateway", None, "not checked: tyk is left out")
    if why := why_not_running(endpoints, "tyk"):
        d.verdict = d.verdict or f"The gateway is down ({why}). Fix: `sandbox up` restarts it."
        return Hop("gateway", False, why)
    gw = live_clients.tyk
    api = api_of(desired, want)
    pol = next((p for p in desired.policies if p.api_id == api.api_id and p.account == want.client_id), None)
    drift = []
    live_api = gw.call("GET", f"/apis/oas/{api.api_id}", ok404=True)
    if live_api.status_code == 404:
        drift.append(f"API {api.api_id} is missing")
    elif str(_jwt_scheme(live_api.json()).get("source", "")).startswith(("http://", "https://")):
        drift.append(f"API {api.api_id} has a plain URL in `source` for its JWKS: Tyk reads `source` back from its "
                     "cache as base64, so only the first call after each reload passes")
    elif diff := differences(api_payload(api), live_api.json()):
        drift.append(f"API {api.api_id} differs ({', '.join(diff[:2])})")
    if pol is not None:
        live_pol = gw.call("GET", f"/policies/{pol.policy_id}", ok404=True)
        if live_pol.status_code == 404:
            drift.append(f"policy {pol.policy_id} is missing")
        elif diff := differences(policy_payload(pol), live_pol.json()):
            drift.append(f"policy {pol.policy_id} differs ({', '.join(diff[:2])})")
    if drift:
        d.verdict = d.verdict or f"The gateway does not match the spec: {'; '.join(drift)}. Fix: `sandbox apply`."
        return Hop("gateway", False, "; ".join(drift))
    if split := replicas_split(endpoints, want, token):
        return _split_hop(d, split, api.api_id, want, token, claims_ok)
    t0 = time.monotonic()
    try:
        r = requests.get(f"{endpoints.to_host(want.url)}/", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    except requests.RequestException as e:
        d.verdict = d.verdict or f"The gateway does not answer ({type(e).__name__}). Fix: `sandbox up`."
        return Hop("gateway", False, f"GET {want.path}/: {type(e).__name__}")
    ms = (time.monotonic() - t0) * 1000
    words = gateway_refusal(r)
    if words == "Key not authorized" and claims_ok:  # right claims, a current kid: the gateway's keys are older
        kid = decode_header(token).get("kid")
        d.verdict = d.verdict or (
            f"The gateway refuses a token signed with the realm's current key ({kid}) although its claims are right: "
            "its cached JWKS predates that key (the signing key was rotated). Fix: flush the gateway's JWKS cache "
            f"(DELETE /tyk/cache/jwks/{api.api_id}) or wait out its cacheTimeout; next time, add the new key "
            "passive first and activate it after the cache has expired.")
        return Hop("gateway", False, f"GET {want.path}/: HTTP {r.status_code} {words} (kid {kid} not in its JWKS)")
    if words is not None and "quota exceeded" in words.lower() and pol is not None \
            and (counters := quota_counters(live_clients, pol.policy_id)):
        key, (counted, renews) = max(counters.items(), key=lambda kv: kv[1][0])
        d.verdict = d.verdict or (
            f"The gateway's quota counter for {want.client_id} on policy {pol.policy_id} stands at {counted} calls "
            f"of a quota of {pol.quota_max}, although the policy matches the spec: the counter lives in Redis apart "
            f"from the policy, counts refused calls too and renews in {renews}s, whatever the policy says now. Fix: "
            f"reset it (delete the Redis key {key}; Tyk's reset_quota on a key) or wait for its renewal; a raised "
            f"quota helps only past {counted}.")
        return Hop("gateway", False, f"GET {want.path}/: HTTP {r.status_code} {words} (quota counter {counted} "
                                     f"of {pol.quota_max})")
    if words is not None:
        cause, fix = explain_refusal(words)
        d.verdict = d.verdict or (f"The gateway refuses {want.client_id}'s token on {want.path}/ with HTTP "
                                  f"{r.status_code} \"{words}\": {cause}. Fix: {fix}.")
        return Hop("gateway", False, f"GET {want.path}/: HTTP {r.status_code} {words}")
    return Hop("gateway", True, f"GET {want.path}/: HTTP {r.status_code} ({ms:.0f} ms), API {api.api_id}"
               + (f", policy {pol.policy_id}" if pol else ""))


def replicas_split(endpoints: Endpoints, want: AirflowConnection, token: str) -> dict[str, tuple[int, str]] | None:
    """A replicated gateway asked the same call through each replica: replica (its pod) -> (HTTP status, the
    gateway's words) when they do not all answer alike (a task's outcome then hangs on which replica serves it),
    else None."""
    replicas = endpoints.components["tyk"].replicas
    if len(replicas) < 2:
        return None
    path = want.url.removeprefix(endpoints.inner("tyk"))
    seen = {}
    for replica, url in replicas.items():
        try:
            r = requests.get(f"{url}{path}/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            seen[replica] = (r.status_code, gateway_refusal(r) or "")
        except requests.RequestException as e:
            seen[replica] = (0, type(e).__name__)
    return seen if len({status for status, _ in seen.values()}) > 1 else None


def _split_hop(d: Diagnosis, split: dict[str, tuple[int, str]], api_id: str, want: AirflowConnection, token: str,
               claims_ok: bool) -> Hop:
    ok = sorted(r for r, (status, _) in split.items() if status < 400)
    bad = {r: answer for r, answer in sorted(split.items()) if r not in ok}
    refuser, (status, words) = next(iter(bad.items()))
    told = f"replica {refuser} refuses it (HTTP {status} {words})" + (f", replica {ok[0]} accepts it" if ok else "")
    if words == "Key not authorized" and claims_ok:
        kid = decode_header(token).get("kid")
        why = (f"the refusing replica's cached JWKS predates the realm's current key ({kid}): a cache flush reached "
               "only some replicas. Fix: flush the JWKS cache on every replica "
               f"(DELETE /tyk/cache/jwks/{api_id} to each pod, {refuser} first, not through the Service), or wait "
               "out its cacheTimeout")
    else:
        cause, fix = explain_refusal(words)
        why = f"{cause}. Fix: {fix} on every replica (`sandbox apply` writes to each)"
    d.verdict = d.verdict or (f"The gateway replicas disagree on {want.client_id}'s token for {want.path}/: {told} — "
                              f"a task's outcome depends on which replica serves its call; {why}.")
    return Hop("gateway", False, f"GET {want.path}/: replicas disagree: {told}")


def quota_counters(live_clients: Clients, policy_id: str) -> dict[str, tuple[int, int]]:
    """The gateway's quota counters for a policy's identities (Redis keys `quota-<policy>-<identity hash>`):
    key -> (calls counted, seconds to its renewal). Empty when Redis cannot be asked."""
    try:
        r = live_clients.redis
        return {k.decode(): (int(r.get(k) or 0), int(r.ttl(k))) for k in r.scan_iter(f"quota-{policy_id}-*")}
    except (SandboxError, redis.RedisError, ValueError):
        return {}


def _jwt_scheme(api: dict) -> dict:
    return api.get("x-tyk-api-gateway", {}).get("server", {}).get("authentication", {}).get(
        "securitySchemes", {}).get(SCHEME, {})


def _routes(handoff: AirflowHandoff) -> dict[str, dict]:
    try:
        return routes(handoff.lib)
    except (OSError, ValueError):
        return {}


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




def airflow_down(endpoints: Endpoints, log_lines: Callable[[str], list[str]]) -> tuple[Diagnosis, bool]:
    """A partly-down Airflow: each of its services (as its health endpoint and the runtime see them), and why,
    from its log. Returns the diagnosis and whether the API server answers (connections can then be walked)."""
    st = endpoints.components["airflow"]
    d = Diagnosis("airflow")
    try:
        health = requests.get(f"{st.url}/api/v2/monitor/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        health = None
    d.hops.append(Hop("api-server", health is not None, f"{st.url}/api/v2/monitor/health " +
                      ("answers" if health is not None else "does not answer")))
    # A container that runs all of Airflow's services (docker) is named after the API server; when one service's
    # end stopped it, the runtime says that service ended: the others stopped with it.
    exited = set(st.ended)
    for svc in HEALTH_KEYS:
        name = svc.replace("_", "-")
        status = (health or {}).get(svc, {}).get("status") if health is not None else None
        if f"airflow-{name}" in exited:  # the runtime saw it exit: Airflow says healthy until its heartbeat ages
            d.hops.append(Hop(name, False, f"its process exited ({st.detail})"))
        else:
            d.hops.append(Hop(name, None if health is None else status == "healthy",
                              "not checked: the API server does not answer" if health is None else status or "missing"))
    if "airflow-api-server" in exited:
        d.hops[0] = Hop("api-server", False, f"its process exited ({st.detail})")
    elif "airflow-api-server" in st.stopped:
        d.hops[0] = Hop("api-server", False, f"stopped with {', '.join(sorted(exited))}, which shares its container "
                                             f"({st.detail})")
    if not any(h.ok is False for h in d.hops):  # the runtime's view is all there is
        d.hops.append(Hop("processes", False, st.detail or f"airflow is {st.state}"))
    down = [h.name for h in d.hops if h.ok is False]
    line = crash.cause(log_lines("airflow"))
    said = f" Its log says: {line.rstrip('.')}." if line else ""
    fix = crash.fix_for(line, Airflow.crash_fixes) if line else "see `sandbox logs airflow`; `sandbox up` restarts it"
    d.verdict = f"Airflow is partly down: {', '.join(down) or 'not healthy'}.{said} Fix: {fix}."
    # the connections are walked with the admin's login: only while a process of ours serves the port
    return d, health is not None and bool(st.pids)


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
            diagnosis, answers = airflow_down(endpoints, log_lines)
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
