"""The gateway's part of `sandbox doctor`: its API and policy against the spec, a real call with the task's token,
its replicas compared, its quota counters in Redis, and its words for a refusal turned into a cause and a fix."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
import requests

from sandbox.errors import SandboxError
from sandbox.plan import AirflowConnection, TykApi, TykPolicy
from sandbox.runtime.base import Endpoints
from sandbox.systems.airflow.token_helper import decode_header
from sandbox.systems.checks import Diagnosis, Hop
from sandbox.systems.tyk.applier import SCHEME, api_payload, differences, policy_payload
from sandbox.systems.tyk.client import TykGateway, gateway_refusal

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


def gateway_hop(d: Diagnosis, api: TykApi, pol: TykPolicy | None, endpoints: Endpoints, gw: TykGateway,
                redis_of: Callable[[], redis.Redis], want: AirflowConnection, token: str, claims_ok: bool) -> Hop:
    """A running gateway's API and policy for the connection as the spec says (`pol`: the account's, None when it
    has none), then a real call with the task's token (through each replica, when they are several)."""
    drift = []
    live_api = gw.call("GET", f"/apis/oas/{api.api_id}", ok404=True)
    if live_api.status_code == 404:
        drift.append(f"API {api.api_id} is missing")
    elif str(jwt_scheme(live_api.json()).get("source", "")).startswith(("http://", "https://")):
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
        return split_hop(d, split, api.api_id, want, token, claims_ok)
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
            "The gateway refuses a token signed with the realm's current key although its claims are right: "
            + stale_jwks(kid, f"(DELETE /tyk/cache/jwks/{api.api_id})") + "; next time, add the new key passive "
            "first and activate it after the cache has expired.")
        return Hop("gateway", False, f"GET {want.path}/: HTTP {r.status_code} {words} (kid {kid} not in its JWKS)")
    if words is not None and "quota exceeded" in words.lower() and pol is not None \
            and (counters := quota_counters(redis_of, pol.policy_id)):
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


def stale_jwks(kid: str | None, flush: str, why: str = "the signing key was rotated") -> str:
    """The verdict on a current key the gateway does not know, for one gateway or a replica of several."""
    return (f"its cached JWKS predates the realm's current key ({kid}) ({why}). Fix: flush the JWKS cache {flush}, "
            "or wait out its cacheTimeout")


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


def split_hop(d: Diagnosis, split: dict[str, tuple[int, str]], api_id: str, want: AirflowConnection, token: str,
               claims_ok: bool) -> Hop:
    ok = sorted(r for r, (status, _) in split.items() if status < 400)
    bad = {r: answer for r, answer in sorted(split.items()) if r not in ok}
    refuser, (status, words) = next(iter(bad.items()))
    told = f"replica {refuser} refuses it (HTTP {status} {words})" + (f", replica {ok[0]} accepts it" if ok else "")
    if words == "Key not authorized" and claims_ok:
        kid = decode_header(token).get("kid")
        why = "the refusing replica: " + stale_jwks(kid, f"on every replica (DELETE /tyk/cache/jwks/{api_id} to "
                                                         f"each pod, {refuser} first, not through the Service)",
                                                    "a cache flush reached only some replicas")
    else:
        cause, fix = explain_refusal(words)
        why = f"{cause}. Fix: {fix} on every replica (`sandbox apply` writes to each)"
    d.verdict = d.verdict or (f"The gateway replicas disagree on {want.client_id}'s token for {want.path}/: {told} — "
                              f"a task's outcome depends on which replica serves its call; {why}.")
    return Hop("gateway", False, f"GET {want.path}/: replicas disagree: {told}")


def quota_counters(redis_of: Callable[[], redis.Redis], policy_id: str) -> dict[str, tuple[int, int]]:
    """The gateway's quota counters for a policy's identities (Redis keys `quota-<policy>-<identity hash>`):
    key -> (calls counted, seconds to its renewal). Empty when Redis cannot be asked."""
    try:
        r = redis_of()
        return {k.decode(): (int(r.get(k) or 0), int(r.ttl(k))) for k in r.scan_iter(f"quota-{policy_id}-*")}
    except (SandboxError, redis.RedisError, ValueError):
        return {}


def jwt_scheme(api: dict) -> dict:
    return api.get("x-tyk-api-gateway", {}).get("server", {}).get("authentication", {}).get(
        "securitySchemes", {}).get(SCHEME, {})
