"""`sandbox snapshot`: what decides each connection's credential path on this machine, as facts another machine's
snapshot can be compared with (`compare.py`).

Seen from where the calls are made (Airflow's processes, their environment and HOME), hop by hop: where a
connection is defined, what a task's HTTP client does on the way (proxies, CA bundles, ~/.netrc), the claims of a
fresh token (never the token), the IdP's keys and clock, the gateway's API, policy and quota counter, Airflow's vault
token, the versions — and doctor's verdict on each connection. Nothing the sandbox holds as a secret is in it.

Written in the stack's own terms: each component's address reads `<name>` (`<keycloak>/realms/dev`), the sandbox's
home `<home>`, so two sandboxes on other ports, or a host and its containers, compare alike where they are alike.
"""

from __future__ import annotations

import base64
import binascii
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from sandbox import versions
from sandbox.clients import Clients
from sandbox.commands import doctor
from sandbox.commands.doctor import api_of, task_token
from sandbox.errors import SandboxError
from sandbox.host.supervisor import tail
from sandbox.paths import SandboxPaths
from sandbox.plan import Addresses, AirflowConnection, Desired, plan
from sandbox.runtime.base import AirflowHandoff, Endpoints, Runtime
from sandbox.spec import Spec
from sandbox.systems.airflow.doctor import airflow_environs, netrc_login, proxy_for, role_name, shadowing
from sandbox.systems.airflow.token_helper import TokenError, decode_claims, decode_header
from sandbox.systems.keycloak.doctor import audiences
from sandbox.systems.openbao.client import Vault, VaultError
from sandbox.systems.openbao.doctor import vault_secret
from sandbox.systems.tyk.doctor import jwt_scheme, quota_counters

SCHEMA = 1
# where a task's calls go, by what they are to it, and the component that answers there
TARGETS = (("idp", "keycloak"), ("vault", "openbao"), ("gateway", "tyk"))
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
CLAIMS = ("iss", "azp", "typ")  # kept as they are; aud and scope as sorted lists, the lifespan from exp - iat


def take(spec: Spec, endpoints: Endpoints, handoff: AirflowHandoff, paths: SandboxPaths, runtime: str,
         log_lines: Callable[[str], list[str]] = lambda _: []) -> dict[str, Any]:
    """The snapshot of the running sandbox, normalized (see `in_own_terms`)."""
    desired = plan(spec, Addresses.of(endpoints))
    clients = Clients(endpoints, allow_unhealthy={"airflow"})  # as doctor: a partly-down Airflow may still answer
    environs = airflow_environs(endpoints)
    targets = {what: endpoints.inner(name) for what, name in TARGETS if name in endpoints.components}
    conns = {c.conn_id: _connection(c, desired, endpoints, handoff, clients, environs) for c in desired.connections}
    facts = {
        "snapshot": SCHEMA,
        "taken": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"runtime": runtime, "os": platform.system(), "cli_python": platform.python_version(),
                    "time_zone": time.strftime("%Z")},
        "versions": {"pinned": {p.component: p.version for p in versions.pins()}, **_airflow_versions(clients)},
        "processes": _processes(environs, targets),
        "tasks_home": {"netrc": sorted(what for what, url in targets.items() if netrc_login(handoff.home, url))},
        "idp": _idp(desired, endpoints, conns),
        "vault": _vault(endpoints, handoff),
        "connections": conns,
        "doctor": _verdicts(spec, endpoints, handoff, log_lines),
    }
    return in_own_terms(facts, addresses(endpoints, paths))


def of_runtime(spec: Spec, rt: Runtime) -> dict[str, Any]:
    """The snapshot of the sandbox `rt` runs, doctor reading its components' logs as `sandbox doctor` does."""
    return take(spec, rt.endpoints(), rt.handoff(), rt.paths, rt.name, lambda name: tail(rt.log_path(name), 400))


def _airflow_versions(clients: Clients) -> dict[str, Any]:
    """What Airflow says it runs: its version and each provider's (a provider upgraded on one machine only)."""
    try:
        version = clients.airflow.call("GET", "/version").json().get("version")
        providers = clients.airflow.call("GET", "/providers", params={"limit": 1000}).json().get("providers", [])
    except (SandboxError, requests.RequestException, ValueError) as e:
        return {"airflow": f"not read: {getattr(e, 'message', type(e).__name__)}"}
    return {"airflow": version, "providers": {p["package_name"]: p["version"] for p in providers}}


def _verdicts(spec: Spec, endpoints: Endpoints, handoff: AirflowHandoff,
              log_lines: Callable[[str], list[str]]) -> dict[str, dict]:
    """Doctor's verdict per connection (a partly-down Airflow is a diagnosis of its own); a doctor that cannot walk
    at all (Keycloak down) is one failing entry that says why, so the snapshot is still written."""
    try:
        found = doctor.run(spec, endpoints, handoff, log_lines=log_lines)
    except SandboxError as e:
        return {"(doctor)": {"ok": False, "hop": None, "verdict": f"{e.message} {e.fix}".strip()}}
    return {d.connection: {"ok": d.ok, "hop": next((h.name for h in d.hops if h.ok is False), None),
                           "verdict": d.verdict} for d in found}


def addresses(endpoints: Endpoints, paths: SandboxPaths) -> dict[str, str]:
    """Text that differs between two sandboxes alike -> what it stands for: each component's addresses as the host
    reaches them (`<keycloak>`) and, where it differs, as the other components do (`<keycloak:inner>`: a token's
    issuer names the one it was fetched at), the home."""
    out = {str(paths.home): "<home>"}
    for name, status in endpoints.components.items():
        for url, label in [*((u, f"<{name}>") for u in (status.url, *status.urls.values())),
                           (status.inner_url, f"<{name}:inner>")]:
            if url and "://" in url:
                out.setdefault(url.split("://", 1)[1].split("/", 1)[0], label)
    return out


def in_own_terms(value: Any, known: dict[str, str]) -> Any:
    """`value` with every known address written as what it stands for (`http://127.0.0.1:28080/x` ->
    `<keycloak>/x`, its scheme dropped with it); the longest first, so a host:port is not cut by a shorter one."""
    if isinstance(value, dict):
        return {k: in_own_terms(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [in_own_terms(v, known) for v in value]
    if not isinstance(value, str):
        return value
    for text in sorted(known, key=len, reverse=True):
        if text in value:
            name = known[text]
            value = value.replace(f"http://{text}", name).replace(f"https://{text}", name).replace(text, name)
    return value


def _processes(environs: dict[str, dict[str, str]], targets: dict[str, str]) -> dict[str, dict]:
    """Per role of Airflow's processes (the scheduler, the triggerer…; its forked workers with it): which of the
    task's targets a request would reach through a proxy, and the CA bundle variables it carries."""
    out: dict[str, dict] = {}
    for proc, env in environs.items():
        r = role_name(proc)
        if r is None or not env:  # a task's own child, or a process whose environment cannot be read
            continue
        seen = out.setdefault(r, {"proxied": {}, "ca": {}})
        for what, url in targets.items():  # the processes of one role may differ: each value any of them has
            if proxy := proxy_for(url, env):
                seen["proxied"].setdefault(what, set()).add(without_userinfo(proxy))
        for k in CA_VARIABLES:
            if env.get(k):
                seen["ca"].setdefault(k, set()).add(env[k])
    return {r: {part: {k: sorted(v) for k, v in sorted(facts.items())} for part, facts in seen.items()}
            for r, seen in sorted(out.items())}


def without_userinfo(url: str) -> str:
    """A proxy URL without the user and password it may carry."""
    scheme, sep, rest = url.rpartition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"


def _connection(want: AirflowConnection, desired: Desired, endpoints: Endpoints, handoff: AirflowHandoff,
                clients: Clients, environs: dict[str, dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {"env": want.env, "defined_in": [f"the environment of {p}" for p in
                                          sorted({role_name(proc) or "a process"
                                                  for proc in shadowing(want.conn_id, environs)})]}
    try:
        r = clients.airflow.call("GET", f"/connections/{want.conn_id}", ok404=True)
        live = None if r.status_code == 404 else r.json()
    except (SandboxError, requests.RequestException, ValueError) as e:
        live, out["metastore"] = None, f"not read: {getattr(e, 'message', type(e).__name__)}"
    if live is not None:
        out["defined_in"].append("the metastore")
        extra = _json(live.get("extra"))
        out["metastore"] = {"conn_type": live.get("conn_type"), "host": without_userinfo(live.get("host") or ""),
                            "port": live.get("port"),
                            "schema": live.get("schema") or None, "has_login": bool(live.get("login")),
                            "has_password": bool(live.get("password")), "extra_keys": sorted(extra),
                            "auth_type": extra.get("auth_type")}
    out["token"] = _token(want, endpoints, handoff)
    out["gateway"] = _gateway(want, desired, clients)
    return out


def _json(text: Any) -> dict:
    try:
        found = json.loads(text) if isinstance(text, str) and text else (text or {})
    except ValueError:
        return {"(not JSON)": True}
    return found if isinstance(found, dict) else {}


def _token(want: AirflowConnection, endpoints: Endpoints, handoff: AirflowHandoff) -> dict[str, Any]:
    """The claims of a fresh token for the connection, fetched as a task would (its secret from the vault with
    Airflow's token), and this machine's clock against the IdP's (`iat` against now)."""
    secret, refused = vault_secret(endpoints, handoff, want.secret_key)
    if secret is None:
        return {"error": f"no secret: {refused}"}
    try:
        token = task_token(endpoints, want, secret)
    except TokenError as e:
        return {"error": str(e)}
    now, claims, header = time.time(), decode_claims(token), decode_header(token)
    return {**{k: claims.get(k) for k in CLAIMS}, "aud": sorted(audiences(claims)),
            "scope": sorted(str(claims.get("scope", "")).split()),
            "lifespan_s": claims.get("exp", 0) - claims.get("iat", 0), "alg": header.get("alg"),
            "_kid": header.get("kid"), "_clock_offset_s": round(claims.get("iat", now) - now)}


def _idp(desired: Desired, endpoints: Endpoints, conns: dict[str, dict]) -> dict[str, dict]:
    """Per realm: its signing keys (how many; which one signs is the tokens'), and the IdP's clock ahead of this
    machine's, in seconds, from a token issued just now."""
    out = {}
    for realm in sorted({c.env for c in desired.connections}):
        tokens = [conns[c.conn_id]["token"] for c in desired.connections if c.env == realm]
        token = next((t for t in tokens if "error" not in t), {})
        api = next(a for a in desired.apis if a.env == realm)
        try:
            keys = requests.get(endpoints.to_host(api.jwks_url), timeout=10).json()["keys"]
            sig = [k.get("kid") for k in keys if k.get("use", "sig") == "sig"]
        except (requests.RequestException, ValueError, KeyError):
            sig = []
        out[realm] = {"signing_keys": len(sig), "token_kid_published": token.get("_kid") in sig if token else None,
                      "clock_offset_s": token.get("_clock_offset_s")}
        for t in tokens:
            t.pop("_kid", None)
            t.pop("_clock_offset_s", None)
    return out


def _gateway(want: AirflowConnection, desired: Desired, clients: Clients) -> dict[str, Any]:
    """The connection's API as the gateway holds it (what it checks in a token) and its policy for the connection's
    client, with whether the quota counter in Redis has used the quota up."""
    api = api_of(desired, want)
    out: dict[str, Any] = {"api": api.api_id}
    try:
        r = clients.tyk.call("GET", f"/apis/oas/{api.api_id}", ok404=True)
        out["jwt"] = None if r.status_code == 404 else _readable(jwt_scheme(r.json()))
        pol = next((p for p in desired.policies if p.api_id == api.api_id and p.account == want.client_id), None)
        if pol is not None:
            live = clients.tyk.call("GET", f"/policies/{pol.policy_id}", ok404=True)
            got = {} if live.status_code == 404 else live.json()
            quota = got.get("quota_max", -1)
            counted = max((n for n, _ in quota_counters(lambda: clients.redis, pol.policy_id).values()), default=0)
            out["policy"] = {"id": pol.policy_id, "found": bool(got), "rate": got.get("rate"), "per": got.get("per"),
                             "quota_max": quota, "quota_used_up": quota > 0 and counted >= quota}
    except (SandboxError, requests.RequestException, ValueError) as e:
        out["error"] = getattr(e, "message", type(e).__name__)
    return out


def _readable(scheme: dict) -> dict:
    """Tyk's JWT scheme, its `source` decoded (Tyk keeps a JWKS URL base64) when it is a URL; any other source is a
    key (an HMAC secret, a public key) and is left out."""
    out = dict(scheme)
    if isinstance(src := out.get("source"), str):
        try:
            url = src if src.startswith(("http://", "https://")) else base64.b64decode(src, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            url = ""
        out["source"] = url if url.startswith(("http://", "https://")) else "(a key, not shown)"
    return out


def _vault(endpoints: Endpoints, handoff: AirflowHandoff) -> dict[str, Any]:
    """Airflow's vault token as the vault sees it (never the token): valid, its policies, renewable."""
    if "openbao" not in endpoints.components or endpoints.components["openbao"].state == "disabled":
        return {"runs": False}
    try:
        token = handoff.vault_token.read_text().strip()
    except OSError:
        return {"runs": True, "airflow_token": "missing"}
    try:
        data = Vault(endpoints.url("openbao"), token).call("GET", "auth/token/lookup-self")["data"]
    except VaultError as e:
        return {"runs": True, "airflow_token": f"refused: {e.message}"}
    except (KeyError, TypeError):
        return {"runs": True, "airflow_token": "unreadable answer"}
    return {"runs": True, "airflow_token": "valid", "policies": sorted(data.get("policies", [])),
            "renewable": data.get("renewable"), "periodic": bool(data.get("period"))}


def dump(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=False) + "\n"


def read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise SandboxError(f"The snapshot {path} cannot be read ({e.strerror}).",
                           "give a file `sandbox snapshot FILE` wrote, here or on another machine.",
                           exit_code=2) from None
    return load(text, str(path))


def load(text: str, source: str) -> dict[str, Any]:
    """A snapshot file read back, or one sentence on what it is instead."""
    try:
        found = json.loads(text)
    except ValueError as e:
        raise SandboxError(f"{source} is not a snapshot: not JSON ({e.msg} at line {e.lineno}).",
                           "give a file `sandbox snapshot FILE` wrote.", exit_code=2) from None
    if not isinstance(found, dict) or found.get("snapshot") != SCHEMA:
        raise SandboxError(f"{source} is not a snapshot of this sandbox version (no \"snapshot\": {SCHEMA}).",
                           "take it again with this version: `sandbox snapshot FILE`.", exit_code=2)
    bad = [k for k in ("machine", "connections", "idp", "doctor") if not isinstance(found.get(k, {}), dict)]
    bad += [f"doctor.{c}" for c, d in (found.get("doctor") or {}).items() if not isinstance(d, dict)]
    if bad:
        raise SandboxError(f"{source} is not a snapshot: {', '.join(bad[:3])} should be objects.",
                           "take it again: `sandbox snapshot FILE` (edited by hand?).", exit_code=2)
    return found

