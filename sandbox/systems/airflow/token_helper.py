"""Client-credentials auth for `requests`: fetches a token, caches it, refreshes it before it expires.

Self-contained (needs only `requests`), because the same file is used by the CLI and, copied into the folder
every Airflow process has on its PYTHONPATH as `sandbox_auth.py`, by Airflow's processes, which run in
Airflow's own virtualenv. There the sandbox's secrets backend (`sandbox_secrets`) uses it to put a bearer token
into each managed connection, so DAG code needs nothing but `http_conn_id`. `SandboxAuth` stays for DAGs that
name it (`auth_type=SandboxAuth`), importable from every process, the triggerer's included.

It finds how to get a token for a route in the routes file beside it (written by `sandbox apply`; no secret in
it) and the client secret through the secrets backend.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import requests

REFRESH_MARGIN = 0.2  # refresh once 80% of a token's life has passed (at least 5 s before expiry)
ROUTES_FILE = "sandbox_routes.json"  # beside this module in the DAG folder: connection id -> route


def routes(folder: Path | None = None) -> dict[str, dict]:
    """The routes file: for each connection id, its gateway URL and how to get a token for it."""
    return json.loads(((folder or Path(__file__).parent) / ROUTES_FILE).read_text())


def route_for_url(url: str, table: dict[str, dict]) -> tuple[str, dict]:
    """The connection whose route `url` is under (the longest match)."""
    hits = [(cid, r) for cid, r in table.items() if url == r["url"] or url.startswith(r["url"].rstrip("/") + "/")]
    if not hits:
        raise LookupError(f"no sandbox route serves {url}; known: {', '.join(r['url'] for r in table.values())}")
    return max(hits, key=lambda hit: len(hit[1]["url"]))


class TokenError(Exception):
    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status, self.body = status, body


def _segment(token: str, i: int) -> dict:
    try:
        part = token.split(".")[i]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}


def decode_claims(token: str) -> dict:
    """The JWT's payload, unverified: for display and diagnosis, never for trust decisions."""
    return _segment(token, 1)


def decode_header(token: str) -> dict:
    """The JWT's header (alg, kid), unverified."""
    return _segment(token, 0)


class ClientCredentialsAuth(requests.auth.AuthBase):
    def __init__(self, token_url: str, client_id: str, client_secret, scope: str = "",
                 clock=time.time, session: requests.Session | None = None):
        # client_secret: the secret, or a function that reads it where it lives (at every token request, so a
        # long-running helper takes a rotated secret without a restart)
        self.token_url, self.client_id, self.client_secret, self.scope = token_url, client_id, client_secret, scope
        self.clock = clock
        self.session = session or requests.Session()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    @classmethod
    def from_route(cls, route: dict, secret_lookup) -> ClientCredentialsAuth:
        """From a route of the routes file; the secret comes from `secret_lookup(credential_variable)` (in a task:
        `Variable.get`, served by the secrets backend)."""
        return cls(route["token_url"], route["client_id"], secret_lookup(route["credential_variable"]),
                   route.get("scope", ""))

    @classmethod
    def from_connection(cls, conn, secret_lookup) -> ClientCredentialsAuth:
        """For an Airflow connection the sandbox manages (by its id)."""
        return cls.from_route(routes()[conn.conn_id], secret_lookup)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def _fetch(self) -> None:
        secret = self.client_secret() if callable(self.client_secret) else self.client_secret
        data = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": secret}
        if self.scope:
            data["scope"] = self.scope
        try:
            r = self.session.post(self.token_url, data=data, timeout=30)
        except requests.RequestException as e:
            raise TokenError(f"token endpoint {self.token_url} unreachable: {type(e).__name__}") from e
        if not r.ok:
            try:
                body = r.json()
                why = f"{body.get('error')}: {body.get('error_description', '')}".strip(": ")
            except ValueError:
                why = r.text[:200]
            raise TokenError(f"token request for {self.client_id} refused: HTTP {r.status_code} {why}",
                             r.status_code, r.text[:500])
        body = r.json()
        now = self.clock()
        life = float(body.get("expires_in", 60))
        self._token = body["access_token"]
        self._refresh_at = now + max(min(life * (1 - REFRESH_MARGIN), life - 5), 0)
        self.fetches += 1

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r


_helpers: dict[str, ClientCredentialsAuth] = {}  # connection id -> its token helper, for the whole process
_helpers_lock = threading.Lock()


def helper(conn_id: str, route: dict, secret_lookup) -> ClientCredentialsAuth:
    """The process's one token helper for a connection: every lookup of it shares the cached token. A route that
    changed (a re-applied spec, a rotated secret) gets a new helper."""
    secret = secret_lookup(route["credential_variable"])
    key = json.dumps([route["token_url"], route["client_id"], route.get("scope", ""), secret])
    with _helpers_lock:
        current = _helpers.get(conn_id)
        if current is None or getattr(current, "key", None) != key:
            current = ClientCredentialsAuth(route["token_url"], route["client_id"], secret, route.get("scope", ""))
            current.key = key
            _helpers[conn_id] = current
        return current


def credentialed(fields: dict, get_token) -> dict:
    """A connection's fields (login, password, extra) with the bearer `get_token()` added: `password` is the token
    and the extra's `Authorization` header carries it (Airflow's HTTP hooks send extra keys as headers). Fields
    with a login or a password of their own are returned as they are, and no token is fetched for them."""
    if fields.get("login") or fields.get("password"):
        return fields
    token = get_token()
    try:
        extra = json.loads(fields.get("extra") or "{}")
    except ValueError:
        extra = {}
    if not isinstance(extra, dict):
        extra = {}
    extra["Authorization"] = f"Bearer {token}"
    return {**fields, "password": token, "extra": json.dumps(extra)}


class SandboxAuth(requests.auth.AuthBase):
    """`auth_type` for Airflow's HttpHook / HttpOperator on a sandbox connection: a bearer token for the route.

    The hook builds it with no arguments (or with the connection's login and password, which it ignores: a login
    must not turn the call into Basic auth). It shares the process's token helper with the secrets backend.
    """

    def __init__(self, *_login_password) -> None:
        pass

    @classmethod
    def helper(cls, conn_id: str, route: dict | None = None) -> ClientCredentialsAuth:
        from airflow.sdk import Variable  # in a task: resolved through the secrets backend

        return helper(conn_id, route or routes()[conn_id], Variable.get)

    @classmethod
    def token_for(cls, conn_id: str) -> str:
        return cls.helper(conn_id).token()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        conn_id, route = route_for_url(r.url or "", routes())
        r.headers["Authorization"] = f"Bearer {self.helper(conn_id, route).token()}"
        return r
