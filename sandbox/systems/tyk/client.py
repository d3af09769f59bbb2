"""The Tyk gateway's API, the only code of the sandbox that speaks it."""

from __future__ import annotations

import json

import requests

from sandbox.errors import SandboxError


class TykGateway:
    """The Gateway API (`/tyk/…`), authenticated with the gateway secret.

    A replicated gateway (`replicas`: each replica's pod -> its URL) keeps APIs and policies per replica, in its own
    folder: a write, a reload and a cache flush go to every replica (Tyk's POST of an existing id replaces it, so a
    create is safe where a replica has it already; a delete where one lacks it is not an error); `apis()`/`policies()`
    list what every replica holds alike, so apply re-creates what a replica started again without."""

    def __init__(self, url: str, secret: str, replicas: dict[str, str] | None = None):
        self.url = url.rstrip("/")
        self.replicas = {name: u.rstrip("/") for name, u in (replicas or {}).items()}
        self.s = requests.Session()
        self.s.headers["x-tyk-authorization"] = secret

    def call(self, method: str, path: str, *, ok404: bool = False, every: bool | None = None,
             **kw) -> requests.Response:
        """`every`: to every replica (default: for anything but a GET)."""
        every = method != "GET" if every is None else every
        fan_out = every and bool(self.replicas)
        for name, url in (self.replicas.items() if fan_out else [("", self.url)]):
            r = self.s.request(method, f"{url}/tyk{path}", timeout=30, **kw)
            if not r.ok and not ((ok404 or (fan_out and method == "DELETE")) and _absent(r)):
                where = f" (replica {name} at {url})" if fan_out else ""
                raise SandboxError(f"Tyk {method} /tyk{path} failed{where}: HTTP {r.status_code} {error_text(r)}",
                                   "check `sandbox logs tyk`; then run the command again.")
        return r

    def apis(self) -> dict[str, dict]:
        """Every OAS API the gateway serves, by API id."""
        return self._alike("/apis/oas", lambda a: a.get("x-tyk-api-gateway", {}).get("info", {}).get("id", ""))

    def policies(self) -> dict[str, dict]:
        return self._alike("/policies", lambda p: p["id"])

    def _alike(self, path: str, key) -> dict[str, dict]:
        """id -> object, of what every replica serves the same (one gateway: what it serves)."""
        views = [{key(o): o for o in self.one(url).call("GET", path).json() or []}
                 for url in list(self.replicas.values()) or [self.url]]
        return {k: v for k, v in views[0].items() if all(view.get(k) == v for view in views[1:])}

    def one(self, url: str) -> TykGateway:
        """The Gateway API of one replica."""
        gw = TykGateway(url, "")
        gw.s = self.s
        return gw

    def reload(self) -> None:
        # `/reload/group` only signals through Redis and returns at once, whatever `block` says; the local
        # reload waits until the new APIs and policies are live.
        self.call("GET", "/reload", every=True, params={"block": "true"})

    def forget_jwks(self, api_id: str) -> None:
        self.call("DELETE", f"/cache/jwks/{api_id}", ok404=True)

    def forget_all_jwks(self) -> None:
        """Every API fetches its JWKS again at its next call (Tyk does not on an unknown `kid`)."""
        for api_id in self.apis():
            if api_id:
                self.forget_jwks(api_id)


def _json_of(r: requests.Response):
    """The body as JSON. Tyk's error template escapes a message for JavaScript, an apostrophe as `\\'`, which JSON
    does not know: a refusal in words with one (a JS plugin's) is read with it put back."""
    try:
        return r.json()
    except ValueError:
        return json.loads(r.text.replace("\\'", "'"))


def error_text(r: requests.Response) -> str:
    """The gateway's own words for a refusal: the `error` (or `message`) of its JSON body."""
    try:
        body = _json_of(r)
    except ValueError:
        return r.text[:200].strip()
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or "")
    return ""


def gateway_refusal(r: requests.Response) -> str | None:
    """Tyk answers a refusal with a JSON body holding only `error`; an upstream's own error looks different."""
    if r.status_code < 400:
        return None
    try:
        body = _json_of(r)
    except ValueError:
        return None
    return error_text(r) if isinstance(body, dict) and set(body) == {"error"} else None


def _absent(r: requests.Response) -> bool:
    """Tyk's answer for what is not there: 404, or, deleting a policy whose file is gone, 500 "Delete failed" (its
    handler stats the file first) — an apply interrupted between the delete and the reload leaves the policy
    listed from memory; the reload after the next apply's writes drops it."""
    return r.status_code == 404 or (r.status_code == 500 and r.request.method == "DELETE"
                                    and "/tyk/policies/" in (r.request.url or "") and error_text(r) == "Delete failed")
