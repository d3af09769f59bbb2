"""`sandbox doctor --caller NAME`: walk a caller's way into Airflow hop by hop, changing nothing, and name the cause.

Hops: grant (the spec lets it into Airflow's API) -> token (Keycloak, in Airflow's realm) -> claims (Airflow's
audience, the caller as `azp`) -> gateway (the route with its token, on a DAG of its grant) -> exchange (Airflow's
/auth/token takes the Keycloak token) -> airflow (Airflow's permission, asked of Keycloak's authorization model, with
the Airflow token). Each judge reads plain data; the walk gathers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from sandbox.commands.accounts import client_secret
from sandbox.errors import SandboxError, use_one_of
from sandbox.paths import SandboxPaths
from sandbox.plan import AIRFLOW_CLIENT, token_url
from sandbox.runtime.base import Endpoints
from sandbox.spec import Grant, Spec
from sandbox.systems.airflow.client import JWT_BEARER
from sandbox.systems.airflow.token_helper import decode_claims
from sandbox.systems.checks import Diagnosis, Hop, Judged
from sandbox.systems.tyk.client import gateway_refusal


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


def judge_token(caller: str, realm: str, status: int, claims: dict) -> Judged:
    if status != 200:
        return (Hop("token", False, f"Keycloak answered HTTP {status} in realm {realm}"),
                f"Keycloak gives {caller} no token in {realm}. Fix: `sandbox apply` (its client and secret).")
    aud = claims.get("aud") or []
    aud = [aud] if isinstance(aud, str) else aud
    if AIRFLOW_CLIENT not in aud:
        return (Hop("token", False, f"aud {', '.join(aud) or '(none)'}: not {AIRFLOW_CLIENT}"),
                f"{caller}'s token does not name Airflow ({AIRFLOW_CLIENT}) as its audience: Airflow refuses it. "
                "Fix: `sandbox apply` restores the client's audience mapper.")
    return Hop("token", True, f"azp {claims.get('azp')}, aud {AIRFLOW_CLIENT}"), None


def judge_gateway(caller: str, route: str, a: Answer) -> Judged:
    if a.status < 400:
        return Hop("gateway", True, f"{route}: HTTP {a.status}"), None
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


def _answer(r: requests.Response) -> Answer:
    return Answer(r.status_code, r.text, gateway_refusal(r))


def diagnose(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, caller: str) -> Diagnosis:
    if caller not in spec.accounts:
        raise SandboxError(f"No account named {caller!r} in {spec.source}.", use_one_of(caller, spec.accounts),
                           exit_code=2)
    d = Diagnosis(f"caller {caller}")
    realm = spec.airflow_realm

    def add(judged: Judged) -> bool:
        hop, verdict = judged
        d.hops.append(hop)
        d.verdict = d.verdict or verdict or ""
        return hop.ok is not False

    grant = spec.inbound_grant(caller)
    if not add(judge_grant(caller, grant)) or grant is None:
        return d
    kc = requests.post(token_url(endpoints.url("keycloak"), realm),
                       data={"grant_type": "client_credentials", "client_id": caller, "scope": "openid",
                             "client_secret": client_secret(paths, realm, caller)}, timeout=30)
    token = kc.json().get("access_token", "") if kc.ok else ""
    if not add(judge_token(caller, realm, kc.status_code, decode_claims(token) if token else {})):
        return d
    dag = grant.dags[0] if grant.dags else None
    bearer = {"Authorization": f"Bearer {token}"}
    if dag:
        route = f"/{realm}/airflow/api/v2/dags/{dag}/dagRuns"
        add(judge_gateway(caller, route, _answer(requests.get(f"{endpoints.url('tyk')}{route}", headers=bearer,
                                                              params={"limit": 1}, timeout=30))))
    airflow = endpoints.url("airflow")
    ex = requests.post(f"{airflow}/auth/token", json={"grant_type": JWT_BEARER, "assertion": token}, timeout=30)
    if not add(judge_exchange(caller, _answer(ex))) or not dag:
        return d
    mine = {"Authorization": f"Bearer {ex.json()['access_token']}"}
    add(judge_airflow(caller, dag, _answer(requests.get(f"{airflow}/api/v2/dags/{dag}/dagRuns", headers=mine,
                                                        params={"limit": 1}, timeout=30))))
    return d
