"""Tyk: one OAS API per environment x service and one policy per grant, through the Gateway API.

The gateway keeps APIs and policies in files and serves what it loaded at its last reload, so every change
is written first and made live by one blocking reload once the gateway's steps are done (`reload`). The JWKS
cache of a changed API is dropped once the realms are done too (`forget_jwks`): it outlives re-created APIs (see
NOTES on the gateway).
"""

from __future__ import annotations

import json

from sandbox.plan import MANAGED, Desired, TykApi, TykPolicy
from sandbox.systems.steps import Change, Step
from sandbox.systems.tyk.client import TykGateway

SCHEME = "keycloak"  # the name of the JWT security scheme in each API
MARK = "x-sandbox"  # top-level OpenAPI extension carrying the managed mark (Tyk keeps x- fields)
# Tyk's default (240 s), stated so that a key rotation behaves the same on every machine; written the way
# Tyk writes durations back, so that reading it back compares equal.
JWKS_CACHE = "4m"
# No token at all is a 401 with a Bearer challenge (RFC 6750), as from any OAuth-protected API: Tyk's JWT check says
# 400 for it. Its error overrides (5.14) rewrite the status of that one error, classified "AMF", keeping its words.
NO_TOKEN = {"enabled": True, "value": {"400": [{
    "match": {"flag": "AMF"},
    "response": {"statusCode": 401, "message": "Authorization field missing",
                 "headers": {"WWW-Authenticate": "Bearer"}},
}]}}


def api_payload(a: TykApi) -> dict:
    jwt = {
        "enabled": True,
        "header": {"enabled": True, "name": "Authorization"},
        "jwksURIs": [{"url": a.jwks_url, "cacheTimeout": JWKS_CACHE}],
        "signingMethod": "rsa",
        "identityBaseField": "sub",
        "idpClientIdMappingDisabled": True,  # Keycloak's tokens carry client_id; policies come from scopes
        "allowedIssuers": [a.issuer],
        "allowedAudiences": [a.audience],
        "scopes": {"claimName": "scope",
                   "scopeToPolicyMapping": [{"scope": s, "policyId": p} for s, p in a.scope_policies]},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": a.api_id, "version": "1.0.0",
                 "description": f"{a.service} in {a.env}, managed by airflow-tyk-sandbox"},
        "paths": {},
        "components": {"securitySchemes": {SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{SCHEME: []}],
        MARK: {"managed": True},
        "x-tyk-api-gateway": {
            "info": {"id": a.api_id, "name": a.api_id, "state": {"active": True}},
            "upstream": {"url": a.upstream_url},
            "server": {
                "listenPath": {"value": a.listen_path, "strip": True},
                "authentication": {"enabled": True, "securitySchemes": {SCHEME: jwt}},
            },
            # Tyk keeps header names lowercased
            "middleware": {"global": {"trafficLogs": {"enabled": True,
                                                      "tagHeaders": [h.lower() for h in a.tag_headers]},
                                      **(_exchange(a.exchange_url) if a.exchange_url else {})}},
            "errorOverrides": NO_TOKEN,
        },
    }


EXCHANGE = "airflowExchange"  # the JS post plugin's function (middleware/airflow_exchange.js)
EXCHANGE_FILE = "middleware/airflow_exchange.js"  # relative to the gateway's working folder, on every runtime
EXCHANGE_REFUSED = "Airflow refused to exchange the caller's token"  # the plugin's words when /auth/token says no
# A policy's meta_data joins its sessions': the exchange reads the assets a caller may post events of from there
ASSETS = "airflow_assets"


def _exchange(airflow_url: str) -> dict:
    """The caller's token swapped for Airflow's after the gateway's own checks (Tyk's JS post plugin: its open-source
    edition has no token exchange of its own)."""
    return {"pluginConfig": {"driver": "otto", "data": {"enabled": True, "value": {"airflow_url": airflow_url}}},
            "postPlugins": [{"enabled": True, "functionName": EXCHANGE, "path": EXCHANGE_FILE,
                             "requireSession": True}]}


def policy_payload(p: TykPolicy) -> dict:
    return {
        "id": p.policy_id, "name": p.policy_id, "org_id": "",  # must equal the APIs' (empty) org id
        "rate": p.rate, "per": p.per, "quota_max": p.quota_max, "quota_renewal_rate": p.quota_renewal_rate,
        "throttle_interval": -1, "throttle_retry_limit": -1, "max_query_depth": -1,
        "access_rights": {p.api_id: {"api_id": p.api_id, "api_name": p.api_id, "versions": ["Default"],
                                     **({"allowed_urls": [{"url": u, "methods": list(m)} for u, m in p.allowed]}
                                        if p.allowed else {})}},
        # Per API: a token mapped to several policies (one per granted service) gets each grant's rate and
        # quota with counters of its own; without it Tyk counts every call of that identity against one budget.
        "partitions": {"quota": False, "rate_limit": False, "complexity": False, "acl": False, "per_api": True},
        # a string: the policy's meta_data joins a session's, whose values a JS plugin must get back as strings
        "active": True, "tags": list(p.tags),
        "meta_data": {MANAGED: "true", **({ASSETS: json.dumps(sorted(p.assets))} if p.assets else {})},
    }


def api_managed(oas: dict) -> bool:
    return bool((oas.get(MARK) or {}).get("managed"))


def policy_managed(pol: dict) -> bool:
    return (pol.get("meta_data") or {}).get(MANAGED) in (True, "true")


def differences(want, have, path: str = "") -> list[str]:
    """Where `have` departs from `want`, comparing only what `want` states (the gateway adds its defaults)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [path or "(all)"]
        return [d for k, v in want.items() for d in differences(v, have.get(k), f"{path}.{k}" if path else k)]
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return [path]
        return [d for i, (w, h) in enumerate(zip(want, have, strict=True)) for d in differences(w, h, f"{path}[{i}]")]
    return [] if want == have else [path]


def steps(gw: TykGateway, desired: Desired) -> list[Step]:
    out: list[Step] = []
    live_pols = gw.policies()
    wanted_pols = {p.policy_id: p for p in desired.policies}
    for pid, p in wanted_pols.items():
        body = policy_payload(p)
        live = live_pols.get(pid)
        detail = f"rate {p.rate}/{p.per}s, quota {p.quota_max}" + (f"/{p.quota_renewal_rate}s" if p.quota_max > 0
                                                                    else "")
        if live is None:
            out.append(Step(Change("tyk", "create", "policy", pid, detail),
                            lambda b=body: gw.call("POST", "/policies", json=b)))
        elif policy_managed(live) and (diff := differences(body, live)):
            out.append(Step(Change("tyk", "update", "policy", pid, ", ".join(diff)),
                            lambda b=body, i=pid: gw.call("PUT", f"/policies/{i}", json=b)))
    for pid, live in live_pols.items():
        if pid not in wanted_pols and policy_managed(live):
            # gone already (an interrupted apply removed its file) is done
            out.append(Step(Change("tyk", "delete", "policy", pid),
                            lambda i=pid: gw.call("DELETE", f"/policies/{i}", ok404=True)))

    live_apis = gw.apis()
    wanted_apis = {a.api_id: a for a in desired.apis}
    for aid, a in wanted_apis.items():
        body = api_payload(a)
        live = live_apis.get(aid)
        if live is None:
            out.append(Step(Change("tyk", "create", "api", aid, f"{a.listen_path} -> {a.upstream_url}"),
                            lambda b=body: gw.call("POST", "/apis/oas", json=b)))
        elif api_managed(live) and (diff := differences(body, live)):
            out.append(Step(Change("tyk", "update", "api", aid, ", ".join(diff[:3]) + (" …" if len(diff) > 3 else "")),
                            lambda b=body, i=aid: gw.call("PUT", f"/apis/oas/{i}", json=b)))
    for aid, live in live_apis.items():
        if aid not in wanted_apis and api_managed(live):
            out.append(Step(Change("tyk", "delete", "api", aid), lambda i=aid: gw.call("DELETE", f"/apis/oas/{i}")))
    return out


def reload(gw: TykGateway, changes: list[Change]) -> None:
    """After the gateway's steps ran: one blocking reload, when any of them changed something."""
    if any(c.system == "tyk" for c in changes):
        gw.reload()


def forget_jwks(gw: TykGateway, changes: list[Change]) -> None:
    """Once the realms are as the spec says too: a fresh JWKS cache for every API that changed."""
    for c in changes:
        if c.system == "tyk" and c.kind == "api":
            gw.forget_jwks(c.name)
