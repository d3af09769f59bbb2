"""`sandbox doctor --caller NAME`: walk a caller's way into Airflow hop by hop, changing nothing, and name the cause.

Hops: grant (the spec lets it into Airflow's API) -> token (Keycloak, in Airflow's realm) -> claims (Airflow's
audience, the caller as `azp`) -> gateway (the route with its token, on a DAG of its grant) -> exchange (Airflow's
/auth/token takes the Keycloak token) -> airflow (Airflow's permission, asked of Keycloak's authorization model, with
the Airflow token) -> calls (what the gateway refused of the caller's own calls since its last one it let through)
-> held (with --token-file: an Airflow token the caller holds, and the Keycloak token inside it) -> said (with
--said: what the caller's own call was answered, in Airflow's words, read beside what the walk found).
Each judge reads plain data; the walk gathers it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import requests

from sandbox.clients import Clients
from sandbox.commands import audit, audit_inbound
from sandbox.commands.accounts import client_secret
from sandbox.errors import SandboxError, use_one_of
from sandbox.paths import SandboxPaths
from sandbox.plan import AIRFLOW_CLIENT, ASSET_EVENTS, allowed_paths, token_url
from sandbox.runtime.base import Endpoints
from sandbox.spec import Grant, Spec
from sandbox.systems.airflow.client import JWT_BEARER
from sandbox.systems.airflow.token_helper import decode_claims
from sandbox.systems.checks import Diagnosis, Hop, Judged
from sandbox.systems.keycloak.doctor import audiences
from sandbox.systems.keycloak.sign_in import LIGHTWEIGHT
from sandbox.systems.tyk.applier import EXCHANGE_REFUSED
from sandbox.systems.tyk.client import gateway_refusal

CALLS_WINDOW_S = 3600  # how far back the gateway's records of the caller's calls are read


@dataclass
class Answer:
    status: int
    text: str
    gateway: str | None = None  # the gateway's own refusal, in its words


def judge_grant(caller: str, grant: Grant | None) -> Judged:
    if grant is None:
        return (Hop("grant", False, "no grant on service airflow"),
                f"{caller} is not granted Airflow's API. Fix: add a grant {{account: {caller}, service: airflow, "
                "dags: [...]}} to the spec, then `sandbox apply`.")
    reaches = [*grant.dags, *grant.assets]
    return Hop("grant", True, f"reaches {', '.join(reaches)}"), None


def judge_token(caller: str, realm: str, status: int, claims: dict, lightweight: bool = False) -> Judged:
    if status != 200:
        return (Hop("token", False, f"Keycloak answered HTTP {status} in realm {realm}"),
                f"Keycloak gives {caller} no token in {realm}. Fix: `sandbox apply` (its client and secret).")
    aud = audiences(claims)
    if AIRFLOW_CLIENT not in aud and lightweight:
        return (Hop("token", False, f"aud {', '.join(aud) or '(none)'}: a lightweight access token"),
                f"{caller}'s client issues lightweight access tokens ({LIGHTWEIGHT}): Keycloak leaves out what its "
                "mappers add, the audiences of the gateway and of Airflow among them. Fix: turn it off for the client "
                "(`sandbox apply` does), or mark its audience mappers \"add to lightweight access token\".")
    if AIRFLOW_CLIENT not in aud:
        return (Hop("token", False, f"aud {', '.join(aud) or '(none)'}: not {AIRFLOW_CLIENT}"),
                f"{caller}'s token does not name Airflow ({AIRFLOW_CLIENT}) as its audience: Airflow refuses it. "
                "Fix: `sandbox apply` restores the client's audience mapper.")
    return Hop("token", True, f"azp {claims.get('azp')}, aud {AIRFLOW_CLIENT}"), None


def judge_gateway(caller: str, route: str, a: Answer) -> Judged:
    if a.status < 400:
        return Hop("gateway", True, f"{route}: HTTP {a.status}"), None
    if a.gateway and a.gateway.startswith(EXCHANGE_REFUSED):  # the route's exchange: the exchange hop says why
        return Hop("gateway", False, f"{route}: HTTP {a.status}: {a.gateway}"), None
    if a.gateway:
        return (Hop("gateway", False, f"{route}: HTTP {a.status} {a.gateway}"),
                f"The gateway refuses {caller} on {route}: {a.gateway}. Fix: check the grant's DAGs and rate; "
                "`sandbox apply` restores its policy.")
    return Hop("gateway", False, f"{route}: HTTP {a.status} from Airflow"), None  # the next hops say why


def judge_exchange(caller: str, a: Answer) -> Judged:
    if a.status == 201:
        return Hop("exchange", True, "Airflow's /auth/token took the Keycloak token (jwt-bearer)"), None
    return (Hop("exchange", False, f"HTTP {a.status} {a.text[:120]}"),
            f"Airflow will not exchange {caller}'s Keycloak token (HTTP {a.status}): its client must be in "
            "[keycloak_auth_manager] jwt_federated_client_ids, and the token must be of Airflow's realm. Fix: "
            "`sandbox apply` (it writes Airflow's sign-in settings and restarts its API server).")


def judge_airflow(caller: str, dag: str, a: Answer) -> Judged:
    if a.status < 400:
        return Hop("airflow", True, f"may read {dag}'s runs"), None
    return (Hop("airflow", False, f"HTTP {a.status} on {dag}'s runs"),
            f"Airflow refuses {caller} on {dag} (Keycloak's authorization model). Fix: `sandbox apply` restores the "
            "caller's policies in Airflow's client.")


def granted(grant: Grant, method: str, path: str) -> bool:
    """Whether the grant lets its caller make this call (its allowed paths, as the gateway matches them: under the
    route's listen path, without the query)."""
    path = path.split("?", 1)[0]
    path = m.group(1) if (m := re.fullmatch(r"/[^/]+/airflow(/.*)", path)) else path
    return any(method in methods and re.fullmatch(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(pattern)), path)
               for pattern, methods in allowed_paths(grant))


AFTER_CHECKS = "The gateway let"  # a refused call the grant names: refused past the gateway's checks


def judge_calls(caller: str, grant: Grant, rows: list[audit_inbound.InboundRow]) -> Judged:
    """The caller's own calls, from the gateway's records: those refused since the last it let through (a refusal
    followed by an accepted call is history). A 403 on a call the grant names was not the policy's: the exchange
    into Airflow, or Airflow, refused it (the record does not say which; what the caller was answered does)."""
    mine = [r for r in rows if r.account == caller]
    last_ok = max((i for i, r in enumerate(mine) if r.status < 400), default=-1)
    refused = [r for r in mine[last_ok + 1:] if r.status >= 400]
    if not refused:
        return Hop("calls", True, f"{len(mine)} recorded, none refused since the last accepted"), None
    r = refused[-1]
    # an asset event's path is every asset's: the gateway's own check of the asset comes past its policy
    if r.status == 403 and granted(grant, r.method, r.path) and ASSET_EVENTS not in r.path:
        quota = " — or its grant's quota was used up (Tyk says that with a 403 too)" if grant.quota else ""
        return (Hop("calls", False, f"{len(refused)} refused since the last accepted; last {r.method} {r.path}: HTTP "
                                    f"403 at {r.when}, a call its grant names"),
                f"{AFTER_CHECKS} {caller}'s {r.method} {r.path} through its checks (the grant names it) and it was "
                f"refused past them (HTTP 403): Airflow refused to exchange the token it sent, or refused the "
                f"call{quota}; a fresh token of {caller} passes (above). Fix: read what {caller} was answered "
                "(`--said`); a token asked without the `openid` scope, or in another realm, is refused at the "
                "exchange.")
    why = {403: f"which its grant does not name (it names {', '.join([*grant.dags, *grant.assets])})",
           429: "past its grant's rate"}.get(r.status, "")
    fix = {403: "call what the grant names, or add it to the grant's `dags`/`assets` in the spec (`sandbox apply`)",
           429: "slow down, or raise the grant's `rate`/`quota` in the spec (`sandbox apply`)"}.get(
        r.status, "`sandbox audit --inbound` lists the calls")
    return (Hop("calls", False, f"{len(refused)} refused since the last accepted; last {r.method} {r.path}: HTTP "
                                f"{r.status} at {r.when}"),
            f"The gateway refused {caller}'s {r.method} {r.path} (HTTP {r.status}){', ' + why if why else ''}. "
            f"Fix: {fix}.")


def _when(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def judge_held(caller: str, held: str, now: float) -> Judged:
    """An Airflow token the caller holds (from /auth/token): Airflow's own `exp`, and the caller's Keycloak token it
    carries, with which Airflow asks Keycloak about each call (Airflow never renews it: no refresh token comes with
    a machine's)."""
    claims = decode_claims(held)
    inner = decode_claims(claims.get("access_token") or "")
    if not claims or not inner:
        return (Hop("held", False, "not an Airflow API token"),
                "The token given is not one of Airflow's /auth/token (no Keycloak token inside it). Fix: give the "
                "token the caller sends to Airflow as `Authorization: Bearer`.")
    if (inner.get("azp") or inner.get("client_id")) != caller:
        who = inner.get("azp") or inner.get("client_id") or "(no client)"
        return (Hop("held", False, f"a token of {who}"),
                f"The token given is {who}'s, not {caller}'s. Fix: give {caller}'s, or `--caller {who}`.")
    if claims.get("exp", 0) <= now:
        return (Hop("held", False, f"Airflow's token expired at {_when(claims.get('exp', 0))}"),
                f"The Airflow token {caller} holds expired at {_when(claims.get('exp', 0))}. Fix: ask /auth/token "
                "for a new one.")
    if inner.get("exp", 0) <= now:
        return (Hop("held", False, f"Airflow's until {_when(claims['exp'])}; the Keycloak token inside it expired "
                                   f"at {_when(inner.get('exp', 0))}"),
                f"{caller} holds an Airflow token valid until {_when(claims['exp'])}, but the Keycloak token inside it "
                f"expired at {_when(inner.get('exp', 0))}, {round(now - inner.get('exp', 0))} s ago: Airflow asks "
                "Keycloak about each call with that token, Keycloak refuses, and Airflow answers 403 to every call. "
                "Fix: ask Airflow for a new token when the Keycloak token's `expires_in` runs out, not Airflow's "
                "`exp`; or send the Keycloak token through the gateway's route, which exchanges it at every call.")
    return Hop("held", True, f"usable until {_when(min(claims['exp'], inner['exp']))} (the Keycloak token inside "
                             f"it; Airflow's own until {_when(claims['exp'])})"), None


def judge_said(caller: str, realm: str, said: str) -> Judged:
    """What the caller's own call was answered, told by the caller (a call made to Airflow directly leaves no record
    with its identity: Airflow's access log has none), read after a green walk: Airflow's words, the cause they
    stand for when the caller's way through the gateway works."""
    if "Client credentials authentication failed" in said:
        return (Hop("said", False, "Airflow's client_credentials grant refused the caller's own client"),
                f"Airflow's /auth/token takes client_credentials of its own client only ({AIRFLOW_CLIENT}; apache/"
                f"airflow 72205) and answers any other client, {caller} included, as it answers a wrong secret: "
                f"{caller}'s secret is right (Keycloak gives it a token, above). Fix: send {caller}'s Keycloak token "
                f"through the gateway's route /{realm}/airflow/ (it exchanges it), or exchange it yourself with "
                f"grant_type {JWT_BEARER}; do not hand out Airflow's own client secret.")
    if "Invalid Keycloak assertion" in said:
        return (Hop("said", False, "Airflow refused to exchange a token a fresh one passes"),
                f"Airflow refused to exchange a token of {caller} that a fresh one of it passes (above): a token asked "
                "without the `openid` scope (Airflow checks it at Keycloak's userinfo), of another realm than "
                f"{realm}, or signed by a key Airflow had not fetched yet (it fetches the realm's keys at most every "
                "30 s). Fix: ask Keycloak with scope=openid in Airflow's realm, and ask again after a key rotation.")
    if "Forbidden" in said:
        return (Hop("said", False, "Airflow's permission check refused it; a fresh token passes"),
                f"Airflow refused {caller}'s call in its permission check, and passes a fresh token of it (above): an "
                "Airflow token held from before carries a Keycloak token that may have expired. Fix: give it with "
                "`--token-file -` to check, and ask a new one when the Keycloak token's `expires_in` runs out.")
    return Hop("said", None, "not words of Airflow the sandbox knows"), None


def _answer(r: requests.Response) -> Answer:
    return Answer(r.status_code, r.text, gateway_refusal(r))


def diagnose(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, caller: str, held: str | None = None,
             said: str | None = None) -> Diagnosis:
    """`held`: an Airflow token the caller holds; `said`: what its own call was answered (both judged last)."""
    if caller not in spec.accounts:
        raise SandboxError(f"No account named {caller!r} in {spec.source}.", use_one_of(caller, spec.accounts),
                           exit_code=2)
    d = Diagnosis(f"caller {caller}")

    def add(judged: Judged) -> bool:
        hop, verdict = judged
        d.hops.append(hop)
        d.verdict = d.verdict or verdict or ""
        return hop.ok is not False

    fallback = walk(spec, endpoints, paths, caller, held, said, add)  # sets the verdict of the hop that names one
    d.verdict = d.verdict or fallback or ""
    return concluded(d, caller, said)


def walk(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, caller: str, held: str | None, said: str | None,
         add) -> str | None:
    """The hops in the order a caller's call takes them; a failing hop ends the walk (the caller's own records, a
    token it holds and its answer are read last, and without a DAG in its grant the DAG's hops are left out). Returns
    the records' reading of a refused call, the verdict when nothing more specific is found."""
    realm = spec.airflow_realm
    grant = spec.inbound_grant(caller)
    if not add(judge_grant(caller, grant)) or grant is None:
        return None
    live = Clients(endpoints)
    # read before this walk's own calls, which the gateway records too
    recorded = audit_inbound.rows(audit.read(live.redis), None, time.time() - CALLS_WINDOW_S)
    kc = requests.post(token_url(endpoints.url("keycloak"), realm),
                       data={"grant_type": "client_credentials", "client_id": caller, "scope": "openid",
                             "client_secret": client_secret(paths, realm, caller)}, timeout=30)
    token = kc.json().get("access_token", "") if kc.ok else ""
    if not add(judge_token(caller, realm, kc.status_code, decode_claims(token) if token else {},
                           _lightweight(live, realm, caller))):
        return None
    dag = grant.dags[0] if grant.dags else None
    bearer = {"Authorization": f"Bearer {token}"}
    if dag:
        route = f"/{realm}/airflow/api/v2/dags/{dag}/dagRuns"
        add(judge_gateway(caller, route, _answer(requests.get(f"{endpoints.url('tyk')}{route}", headers=bearer,
                                                              params={"limit": 1}, timeout=30))))
    airflow = endpoints.url("airflow")
    ex = requests.post(f"{airflow}/auth/token", json={"grant_type": JWT_BEARER, "assertion": token}, timeout=30)
    if not add(judge_exchange(caller, _answer(ex))):
        return None
    mine = {"Authorization": f"Bearer {ex.json()['access_token']}"}
    if dag and not add(judge_airflow(caller, dag, _answer(requests.get(
            f"{airflow}/api/v2/dags/{dag}/dagRuns", headers=mine, params={"limit": 1}, timeout=30)))):
        return None
    calls, refused = judge_calls(caller, grant, recorded)
    # a refusal past the gateway's checks: what the caller holds or was answered says which
    told = (bool(said) or held is not None) and bool(refused) and refused.startswith(AFTER_CHECKS)
    if not add((calls, None if told else refused)) and not told:
        return None
    if held is not None and not add(judge_held(caller, held.strip(), time.time())):
        return None
    if said:
        add(judge_said(caller, realm, said))
    return refused


def concluded(d: Diagnosis, caller: str, said: str | None) -> Diagnosis:
    """The walk's verdict, or — when no hop named a cause — what its first failing hop saw, or that it is healthy."""
    failed = next((h for h in d.hops if h.ok is False), None)
    if d.verdict:
        return d
    if failed is not None:
        d.verdict = (f"{caller}'s way into Airflow fails at {failed.name}: {failed.detail}. Fix: `sandbox apply` "
                     "restores the route, the exchange and Airflow's settings; then `sandbox doctor --caller "
                     f"{caller}` again.")
    elif said:
        d.verdict = (f"Every hop of {caller}'s way into Airflow is healthy, and what {caller} was answered is not "
                     "words of Airflow or the gateway the sandbox knows: compare its call with `sandbox call "
                     f"{caller} airflow …`.")
    else:
        d.verdict = f"Every hop of {caller}'s way into Airflow is healthy."
    return d


def _lightweight(live: Clients, realm: str, caller: str) -> bool:
    admin = live.keycloak
    admin.change_current_realm(realm)
    uuid = admin.get_client_id(caller)
    return bool(uuid) and admin.get_client(uuid).get("attributes", {}).get(LIGHTWEIGHT) == "true"
