"""Keycloak: realms, client scopes and service-account clients, through the admin REST API."""

from __future__ import annotations

import json
import time

from keycloak import KeycloakAdmin
from keycloak.exceptions import KeycloakError

from sandbox.plan import MANAGED, Desired, KeycloakClient, KeycloakScope
from sandbox.systems.keycloak.realm_keys import new_realm_keys
from sandbox.systems.steps import Change, Step

AUDIENCE_MAPPER = "gateway-audience"
# Without `basic` the token loses `sub`; Keycloak adds `service_account` to every service-account client.
ALWAYS_SCOPES = ("basic", "service_account")


def realm_payload(name: str, lifespan: int) -> dict:
    return {"realm": name, "enabled": True, "accessTokenLifespan": lifespan, "attributes": {MANAGED: "true"}}


def scope_payload(s: KeycloakScope) -> dict:
    return {"name": s.name, "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false", MANAGED: "true"}}


def mapper_payload(audience: str) -> dict:
    return {"name": AUDIENCE_MAPPER, "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
            "config": {"included.custom.audience": audience, "access.token.claim": "true",
                       "id.token.claim": "false", "introspection.token.claim": "true"}}


# Client secret rotation with overlap (Keycloak's preview feature `client-secret-rotation`, which the sandbox's
# Keycloak is built with): a client policy of the realm applies this profile to every confidential client, so a
# regenerated client's old secret stays valid as its "rotated secret" until `sandbox rotate` invalidates it (or,
# should rotate die half-way, until ROTATED_BACKSTOP passes). A secret's own lifetime is long: expiring one is
# `sandbox rotate`'s decision, never a surprise (its expiry is kept in int seconds since 1970: a few years at most).
ROTATION = "sandbox-secret-rotation"  # the profile's and the policy's name
SECRET_LIFETIME = 2 * 365 * 86400
ROTATED_BACKSTOP = 3600


def rotation_profile() -> dict:
    return {"name": ROTATION, "description": "managed by airflow-tyk-sandbox: keep a rotated secret valid for "
            "the rotation's grace period", "executors": [{"executor": "secret-rotation", "configuration": {
                "expiration-period": str(SECRET_LIFETIME), "rotated-expiration-period": str(ROTATED_BACKSTOP),
                "remaining-rotation-period": "86400"}}]}


def rotation_policy() -> dict:
    return {"name": ROTATION, "description": "managed by airflow-tyk-sandbox", "enabled": True,
            "conditions": [{"condition": "client-access-type", "configuration": {"type": ["confidential"]}}],
            "profiles": [ROTATION]}


# A client's own access-token lifespan, overriding the realm's (the spec sets lifespans per environment only)
CLIENT_LIFESPAN = "access.token.lifespan"


AIRFLOW_AUDIENCE_MAPPER = "airflow-audience"


def airflow_mapper_payload(client_id: str) -> dict:
    """A caller into Airflow: Airflow's client in `aud`, which its token exchange checks."""
    return {"name": AIRFLOW_AUDIENCE_MAPPER, "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
            "config": {"included.client.audience": client_id, "access.token.claim": "true",
                       "id.token.claim": "false", "introspection.token.claim": "true"}}


def default_scopes(c: KeycloakClient) -> set[str]:
    # a caller into Airflow: `profile` carries the preferred_username Airflow records as who triggered a run
    return {*ALWAYS_SCOPES, *(("profile",) if c.airflow_audience else ()), *c.scopes}


def client_payload(c: KeycloakClient) -> dict:
    return {"clientId": c.client_id, "description": c.description, "enabled": True, "protocol": "openid-connect",
            "publicClient": False, "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": True,
            "standardFlowEnabled": False, "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "attributes": {MANAGED: "true"}, "defaultClientScopes": sorted(default_scopes(c)),
            "optionalClientScopes": [], "protocolMappers": [
                mapper_payload(c.audience),
                *([airflow_mapper_payload(c.airflow_audience)] if c.airflow_audience else [])]}


def _managed(obj: dict) -> bool:
    return (obj.get("attributes") or {}).get(MANAGED) == "true"


def steps(admin: KeycloakAdmin, desired: Desired) -> list[Step]:
    out: list[Step] = []
    live_realms = {r["realm"]: r for r in admin.get_realms()}
    wanted = {r.realm: r for r in desired.realms}
    for name in live_realms:
        if name not in wanted and _managed(admin.get_realm(name)):
            out.append(Step(Change("keycloak", "delete", "realm", name), lambda n=name: admin.delete_realm(n)))
    for name, r in wanted.items():
        if name not in live_realms:
            out.append(Step(Change("keycloak", "create", "realm", name, f"token lifespan {r.access_token_lifespan}s"),
                            lambda r=r: _create_realm(admin, {**realm_payload(r.realm, r.access_token_lifespan),
                                                              "components": new_realm_keys(r.realm)})))
            # a new realm holds nothing yet: its rotation policy, all its scopes and clients are to be created
            out.append(_rotation_step(admin, name, "create"))
            out += [_create_scope_step(admin, s) for s in desired.scopes if s.realm == name]
            out += [_create_client_step(admin, c) for c in desired.clients if c.realm == name]
            continue
        live = admin.get_realm(name)
        if not _managed(live):
            continue  # a realm of that name the sandbox did not create: left alone
        if live.get("accessTokenLifespan") != r.access_token_lifespan:
            out.append(Step(Change("keycloak", "update", "realm", name,
                                   f"token lifespan {live.get('accessTokenLifespan')}s -> {r.access_token_lifespan}s"),
                            lambda r=r: admin.update_realm(r.realm, realm_payload(r.realm, r.access_token_lifespan))))
        if not _rotation_in_place(admin, name):
            out.append(_rotation_step(admin, name, "update"))
        out += _realm_contents(admin, name, desired)
    return out


def _policies_url(realm: str, kind: str) -> str:
    return f"admin/realms/{realm}/client-policies/{kind}"


def _get(admin: KeycloakAdmin, path: str) -> dict:
    r = admin.connection.raw_get(path)
    r.raise_for_status()
    return r.json()


def _rotation_in_place(admin: KeycloakAdmin, realm: str) -> bool:
    profiles = _get(admin, _policies_url(realm, "profiles")).get("profiles") or []
    policies = _get(admin, _policies_url(realm, "policies")).get("policies") or []
    return any(p.get("name") == ROTATION for p in profiles) and any(
        p.get("name") == ROTATION and p.get("enabled") and ROTATION in (p.get("profiles") or []) for p in policies)


def _ensure_rotation(admin: KeycloakAdmin, realm: str) -> None:
    """The realm's rotation profile and policy, beside whatever other profiles and policies it has."""
    for kind, mine in (("profiles", rotation_profile()), ("policies", rotation_policy())):
        url = _policies_url(realm, kind)
        others = [p for p in _get(admin, url).get(kind) or [] if p.get("name") != ROTATION]
        admin.connection.raw_put(url, data=json.dumps({kind: [*others, mine]})).raise_for_status()


def _rotation_step(admin: KeycloakAdmin, realm: str, action: str) -> Step:
    return Step(Change("keycloak", action, "client-policy", f"{realm}/{ROTATION}",
                       "old client secrets stay valid through a rotation's grace"),
                lambda: _ensure_rotation(admin, realm))


def _create_realm(admin: KeycloakAdmin, payload: dict) -> None:
    """Create a realm, or accept one an interrupted apply asked for: Keycloak finishes creating it after the
    client is gone, and meanwhile answers a second create with 409 or "Database operation failed"."""
    try:
        admin.create_realm(payload, skip_exists=True)
    except Exception:  # noqa: BLE001 - whatever it said, the realm's existence decides
        if not _readable(admin, payload["realm"]):
            raise
        return
    _readable(admin, payload["realm"])


def _readable(admin: KeycloakAdmin, realm: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.get_realm(realm)
            return True
        except KeycloakError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def _in_realm(admin: KeycloakAdmin, realm: str, fn, *args):
    def run() -> None:
        admin.change_current_realm(realm)
        fn(admin, *args)

    return run


def _create_scope_step(admin: KeycloakAdmin, s: KeycloakScope) -> Step:
    return Step(Change("keycloak", "create", "scope", f"{s.realm}/{s.name}"),
                _in_realm(admin, s.realm, lambda a: a.create_client_scope(scope_payload(s), skip_exists=True)))


def _create_client_step(admin: KeycloakAdmin, c: KeycloakClient) -> Step:
    return Step(Change("keycloak", "create", "client", f"{c.realm}/{c.client_id}", f"scopes {' '.join(c.scopes)}"),
                _in_realm(admin, c.realm, lambda a: a.create_client(client_payload(c), skip_exists=True)))


def _realm_contents(admin: KeycloakAdmin, realm: str, desired: Desired) -> list[Step]:
    admin.change_current_realm(realm)
    out: list[Step] = []
    want_scopes = {s.name: s for s in desired.scopes if s.realm == realm}
    live_scopes = {s["name"]: s for s in admin.get_client_scopes()}
    for name, s in want_scopes.items():
        if name not in live_scopes:
            out.append(_create_scope_step(admin, s))
    for name, live in live_scopes.items():
        if name not in want_scopes and _managed(live):
            out.append(Step(Change("keycloak", "delete", "scope", f"{realm}/{name}"),
                            _in_realm(admin, realm, lambda a, i: a.delete_client_scope(i), live["id"])))

    want_clients = {c.client_id: c for c in desired.clients if c.realm == realm}
    live_clients = {c["clientId"]: c for c in admin.get_clients()}
    for cid, c in want_clients.items():
        live = live_clients.get(cid)
        if live is None:
            out.append(_create_client_step(admin, c))
            continue
        if not _managed(live):
            continue  # someone else's client of the same name: left alone
        have = set(live.get("defaultClientScopes") or [])
        want = default_scopes(c)
        mapper = next((m for m in live.get("protocolMappers") or [] if m["name"] == AUDIENCE_MAPPER), None)
        to_airflow = next((m for m in live.get("protocolMappers") or [] if m["name"] == AIRFLOW_AUDIENCE_MAPPER), None)
        drift = []
        if have != want:
            drift.append(f"scopes +{sorted(want - have)} -{sorted(have - want)}")
        if mapper is None or mapper.get("config", {}).get("included.custom.audience") != c.audience:
            drift.append("audience mapper")
        if (to_airflow or {}).get("config", {}).get("included.client.audience") != (c.airflow_audience or None):
            drift.append("Airflow's audience" if c.airflow_audience else "calls Airflow no more")
        if override := (live.get("attributes") or {}).get(CLIENT_LIFESPAN):
            drift.append(f"token lifespan override {override}s")
        if not live.get("serviceAccountsEnabled") or live.get("publicClient") or live.get("directAccessGrantsEnabled"):
            drift.append("client settings")
        if drift:
            out.append(Step(Change("keycloak", "update", "client", f"{realm}/{cid}", "; ".join(drift)),
                            _in_realm(admin, realm, _repair_client, c, live["id"], have, want, mapper,
                                      to_airflow)))
    signing_in = desired.sign_in.clients() if desired.sign_in and desired.sign_in.realm == realm else ()
    for cid, live in live_clients.items():
        if cid not in want_clients and cid not in signing_in and _managed(live):  # sign_in.py keeps Airflow's
            out.append(Step(Change("keycloak", "delete", "client", f"{realm}/{cid}"),
                            _in_realm(admin, realm, lambda a, i: a.delete_client(i), live["id"])))
    return out


def _repair_client(admin: KeycloakAdmin, c: KeycloakClient, uuid: str, have: set, want: set, mapper,
                   to_airflow) -> None:
    payload = client_payload(c)
    for k in ("defaultClientScopes", "optionalClientScopes", "protocolMappers"):
        payload.pop(k)  # not updatable through PUT; handled below
    # Keycloak merges attributes on update: an override is cleared by setting it empty, not by leaving it out
    payload["attributes"] = {**payload["attributes"], CLIENT_LIFESPAN: ""}
    admin.update_client(uuid, payload)
    by_name = {s["name"]: s["id"] for s in admin.get_client_scopes()}
    for name in want - have:
        admin.add_client_default_client_scope(uuid, by_name[name], {})
    for name in have - want:
        if name in by_name:
            admin.delete_client_default_client_scope(uuid, by_name[name])
    if mapper is None:
        admin.add_mapper_to_client(uuid, mapper_payload(c.audience))
    elif mapper.get("config", {}).get("included.custom.audience") != c.audience:
        admin.update_client_mapper(uuid, mapper["id"], {**mapper_payload(c.audience), "id": mapper["id"]})
    if to_airflow is not None and to_airflow.get("config", {}).get("included.client.audience") != c.airflow_audience:
        admin.remove_client_mapper(uuid, to_airflow["id"])
        to_airflow = None
    if to_airflow is None and c.airflow_audience:
        admin.add_mapper_to_client(uuid, airflow_mapper_payload(c.airflow_audience))


def client_secrets(admin: KeycloakAdmin, desired: Desired) -> dict[tuple[str, str], str]:
    """(realm, client id) -> the client's current secret, read after converging."""
    out = {}
    for c in desired.clients:
        admin.change_current_realm(c.realm)
        uuid = admin.get_client_id(c.client_id)
        if uuid:
            out[(c.realm, c.client_id)] = admin.get_client_secrets(uuid)["value"]
    admin.change_current_realm("master")
    return out
