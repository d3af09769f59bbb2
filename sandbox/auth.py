"""Client-credentials auth for `requests`: fetches a token, caches it, refreshes it before it expires.

Self-contained (needs only `requests`), because the same file is used by the CLI and, copied into the
sandbox's DAG folder, by Airflow tasks, which run in Airflow's own virtualenv.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import requests

REFRESH_MARGIN = 0.2  # refresh once 80% of a token's life has passed (at least 5 s before expiry)


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
    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str = "",
                 clock=time.time, session: requests.Session | None = None):
        self.token_url, self.client_id, self.client_secret, self.scope = token_url, client_id, client_secret, scope
        self.clock = clock
        self.session = session or requests.Session()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    @classmethod
    def from_connection(cls, conn, secret_lookup) -> ClientCredentialsAuth:
        """From an Airflow connection: its extra names the token endpoint (`auth_url`), client and scope; the
        secret comes from `secret_lookup(credential_variable)` (in a task: `Variable.get`, from the secrets backend)."""
        extra = conn.extra_dejson
        return cls(extra["auth_url"], extra["client_id"], secret_lookup(extra["credential_variable"]),
                   extra.get("scope", ""))

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def _fetch(self) -> None:
        data = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
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
