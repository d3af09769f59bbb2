"""`sandbox call`: an account's token, one request through the gateway, and what came back from each side.

It is the curl a newcomer would write by hand: token endpoint, bearer header, gateway route.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import requests

from sandbox.clients import why_not_running
from sandbox.commands.accounts import auth_for
from sandbox.errors import SandboxError, use_one_of
from sandbox.host.credentials import mask
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Endpoints
from sandbox.spec import AIRFLOW_SERVICE, Spec
from sandbox.systems.airflow.token_helper import TokenError, decode_claims
from sandbox.systems.tyk.client import gateway_refusal


@dataclass
class CallResult:
    method: str
    url: str
    status: int
    gateway_error: str | None  # the gateway's words when it refused the call itself
    body: object  # the upstream's answer (JSON when it sent JSON)
    seconds: float
    claims: dict = field(default_factory=dict)  # azp, scope and exp of the token that was sent

    @property
    def ok(self) -> bool:
        return self.status < 400


def hide_token(text: str, token: str) -> str:
    return text.replace(token, mask(token)) if token else text


def _content_type(data: str | None) -> dict[str, str]:
    """JSON is sent as JSON (Airflow's API takes nothing else); other data as curl's -d sends it."""
    if data is None:
        return {}
    try:
        json.loads(data)
    except ValueError:
        return {"Content-Type": "application/x-www-form-urlencoded"}
    return {"Content-Type": "application/json"}


def call(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, account: str, service: str, path: str = "",
         env: str = "dev", method: str = "GET", data: str | None = None) -> CallResult:
    if service not in spec.services and service != AIRFLOW_SERVICE:  # airflow: its API, reserved
        raise SandboxError(f"No service named {service!r} in {spec.source}.",
                           use_one_of(service, [*spec.services, AIRFLOW_SERVICE]), exit_code=2)
    # Airflow checks a caller's token at Keycloak's userinfo when it exchanges it, which wants the openid scope
    auth = auth_for(spec, endpoints, paths, account, env, "openid" if service == AIRFLOW_SERVICE else "")
    if why := why_not_running(endpoints, "tyk"):
        raise SandboxError(f"No call through the gateway: {why}.", "run `sandbox up`.")
    try:
        token = auth.token()
    except TokenError as e:
        raise SandboxError(f"Keycloak refused a token for {account} in {env}: {e}",
                           "`sandbox doctor` names the cause; `sandbox apply` repairs the client.") from e
    url = f"{endpoints.url('tyk')}/{env}/{service}/{path.lstrip('/')}"
    t0 = time.monotonic()
    try:
        headers = {"Authorization": f"Bearer {token}", **_content_type(data)}
        r = requests.request(method, url, data=data, headers=headers, timeout=30)
    except requests.RequestException as e:
        raise SandboxError(f"The gateway at {endpoints.url('tyk')} did not answer ({type(e).__name__}).",
                           "check `sandbox status`; `sandbox up` restarts it.") from e
    seconds = time.monotonic() - t0
    text = hide_token(r.text, token)  # an echoing upstream sends the bearer back; it is a credential
    try:
        body: object = json.loads(text)
    except ValueError:
        body = text
    claims = decode_claims(token)
    return CallResult(method, url, r.status_code, gateway_refusal(r), body, seconds,
                      {k: claims.get(k) for k in ("azp", "scope", "exp")})
