"""Airflow's REST API v2, the only code of the sandbox that speaks it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from sandbox.errors import SandboxError
from sandbox.host.credentials import write_private
from sandbox.plan import token_endpoint
from sandbox.systems.airflow.token_helper import decode_header

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SIGN_IN = "sign-in"  # Airflow's status URL naming its realm's issuer: where its callers get their Keycloak token


class AirflowApi:
    """Airflow's REST API v2 as the sandbox's own caller: a client of Airflow's realm whose Keycloak token Airflow's
    auth manager exchanges for its own (the jwt-bearer grant), as any machine caller's."""

    def __init__(self, url: str, token_url: str, client_id: str, secret: str, keep: Path | None = None):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.auth = SignedIn(self.url, token_url, client_id, secret, keep)
        airflow_token(self.url, token_url, client_id, secret, keep)  # refused now rather than at the first call

    @classmethod
    def of_status(cls, af: dict) -> AirflowApi:
        """From Airflow's row of `sandbox status -o json --show-secrets` (its URL, realm, caller and secret)."""
        return cls(af["url"], token_endpoint(af["urls"][SIGN_IN]), af["username"], af["secret"])

    @property
    def base(self) -> str:
        return f"{self.url}/api/v2"

    def call(self, method: str, path: str, *, ok404: bool = False, **kw) -> requests.Response:
        r = self.s.request(method, f"{self.base}{path}", timeout=30, **kw)
        if not r.ok and not (ok404 and r.status_code == 404):
            raise SandboxError(f"Airflow {method} {path} failed: HTTP {r.status_code} {r.text[:300]}")
        return r

    def reparse(self, dag_id_pattern: str) -> bool:
        """Ask the dag-processor to parse the file of the DAGs matching the pattern now (rather than at its next
        periodic parse, up to 30 s away). False when no such DAG is known yet (a new file is found on its own)."""
        dags = self.call("GET", "/dags", params={"dag_id_pattern": dag_id_pattern, "limit": 1}).json()["dags"]
        if not dags:
            return False
        self.call("PUT", f"/parseDagFile/{dags[0]['file_token']}")
        return True

    def connections(self) -> list[dict]:
        out, offset = [], 0
        while True:
            page = self.call("GET", "/connections", params={"limit": 100, "offset": offset}).json()
            out += page["connections"]
            offset += 100
            if offset >= page["total_entries"]:
                return out


class SignedIn(requests.auth.AuthBase):
    """Each request with an Airflow token whose Keycloak token is still alive: an Airflow token is worth nothing once
    the Keycloak token inside it has expired (every permission is asked of Keycloak with it), so a session that
    outlives one signs in again. And once more when Airflow refuses a token held from before: Keycloak no longer
    honours it (its realm's signing key was rotated), and Airflow says so with a 403, as it says a refusal."""

    def __init__(self, url: str, token_url: str, client_id: str, secret: str, keep: Path | None = None):
        self.args = (url, token_url, client_id, secret, keep)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token, held = airflow_token_held(*self.args)
        r.headers["Authorization"] = f"Bearer {token}"
        if held:
            r.register_hook("response", self._again_if_refused)
        return r

    def _again_if_refused(self, r: requests.Response, **kw) -> requests.Response:
        if r.status_code != 403:
            return r
        forget(*self.args)
        again = r.request.copy()
        again.deregister_hook("response", self._again_if_refused)  # once: a refusal of a new token is an answer
        again.headers["Authorization"] = f"Bearer {airflow_token(*self.args)}"
        r.content  # noqa: B018 — read, so the connection goes back to the pool
        r.close()
        answer = r.connection.send(again, **kw)
        answer.history.append(r)
        return answer


# An OAuth client keeps its token until it nears its end, and so does the sandbox, per process: one command asks
# Airflow many times (a repro's baseline, its fault, its revert), and an exchange asked just after the realm's
# signing key changed is refused for up to 30 s (PyJWT's JWKS client will not fetch the keys again sooner: a
# phenomenon of Airflow's auth manager, not the sandbox's to hide — only its own calls must not hang on it).
_HELD: dict[tuple[str, str, str], tuple[str, float]] = {}  # (Airflow, token URL, client) -> (its token, Keycloak exp)
KEEP_MARGIN = 30.0  # seconds of the Keycloak token's life left when the sandbox asks for a new one


def airflow_token(url: str, token_url: str, client_id: str, secret: str, keep: Path | None = None) -> str:
    """An Airflow token for a client of Airflow's realm: its Keycloak token (with `openid`, which Airflow's check of
    it at Keycloak's userinfo needs), exchanged at Airflow's /auth/token; the one this process holds while it lasts,
    else the one kept in `keep` (the home's, 0600: `repro --keep` and the `doctor` after it are two processes)."""
    return airflow_token_held(url, token_url, client_id, secret, keep)[0]


def forget(url: str, token_url: str, client_id: str, secret: str, keep: Path | None = None) -> None:
    """The held token is refused: neither this process nor the next uses it again."""
    _HELD.pop((url, token_url, client_id), None)
    if keep is not None:
        keep.unlink(missing_ok=True)


def airflow_token_held(url: str, token_url: str, client_id: str, secret: str,
                       keep: Path | None = None) -> tuple[str, bool]:
    """airflow_token's token, and whether it was held from before (True) or made now."""
    key = (url, token_url, client_id)
    if not _HELD.get(key) and keep is not None and keep.exists():
        try:
            kept = json.loads(keep.read_text())
            _HELD[key] = (kept["token"], kept["expires"]) if kept["for"] == list(key) else _HELD.get(key)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if (held := _HELD.get(key)) and held[1] - KEEP_MARGIN > time.time():
        return held[0], True
    asked = time.time()
    kc = requests.post(token_url, data={"grant_type": "client_credentials", "client_id": client_id,
                                        "client_secret": secret, "scope": "openid"}, timeout=30)
    if not kc.ok:
        raise SandboxError(f"Keycloak refused {client_id}'s token for Airflow (HTTP {kc.status_code} at {token_url}).",
                           "run `sandbox apply`: it makes Airflow's realm, its client and the sandbox's caller.")
    r = _exchange(url, kc.json()["access_token"], token_url)
    if r.status_code != 201:
        raise SandboxError(f"Airflow at {url} refused to exchange {client_id}'s Keycloak token (HTTP {r.status_code} "
                           f"{r.text[:200]}).", "check `sandbox status`; `sandbox apply` restores Airflow's sign-in.")
    token = r.json()["access_token"]
    _HELD[key] = (token, asked + kc.json().get("expires_in", 0))
    if keep is not None:
        write_private(keep, json.dumps({"for": list(key), "token": token, "expires": _HELD[key][1]}))
    return token, False


# Airflow's auth manager checks an assertion against the realm's keys through PyJWT's PyJWKClient, which fetches
# them again for a key it lacks at most every 30 s: just after the realm's signing key changed (a rotation, its
# end at the next `up`), a token of the new key is refused ("Invalid Keycloak assertion") for up to that long.
JWKS_COOLDOWN_S = 30.0


def _exchange(url: str, assertion: str, token_url: str) -> requests.Response:
    """Airflow's /auth/token for a Keycloak token; refused while Airflow has not fetched the key that signed it (a
    key the realm publishes), asked again until its JWKS client may fetch once more."""
    deadline = time.monotonic() + JWKS_COOLDOWN_S + 5
    while True:
        r = requests.post(f"{url}/auth/token", json={"grant_type": JWT_BEARER, "assertion": assertion}, timeout=30)
        if r.status_code != 403 or time.monotonic() > deadline or not _published(token_url, assertion):
            return r
        time.sleep(2.0)


def _published(token_url: str, token: str) -> bool:
    """Whether the realm publishes the key that signed `token` (its JWKS beside its token endpoint)."""
    try:
        keys = requests.get(token_url.removesuffix("/token") + "/certs", timeout=10).json()["keys"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    return decode_header(token).get("kid") in {k.get("kid") for k in keys}
