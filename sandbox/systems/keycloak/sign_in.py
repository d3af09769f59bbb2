"""Airflow's side in Keycloak: its auth manager's client with Airflow's authorization model, the callers allowed to
exchange their token for Airflow's, and the people who sign in (docs/plans/inbound.md).

The model is what the provider's `airflow keycloak-auth-manager create-all` makes — scopes, resources, a policy per
role, the ReadOnly/Admin/User/Op permissions — held inline in one client representation (one create, compared as one
object), with the resource server's decision strategy AFFIRMATIVE: under Keycloak's default UNANIMOUS the resource-
less Admin permission denies every request it does not grant, Admin's own included (seen on Keycloak 26.7)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from keycloak import KeycloakAdmin

from sandbox.plan import MANAGED, AirflowSignIn, Desired, KeycloakPerson
from sandbox.systems.keycloak.applier import airflow_mapper_payload
from sandbox.systems.steps import Change, Step

SCOPES = ("GET", "POST", "PUT", "DELETE", "MENU", "LIST")
# the provider's KeycloakResource values, and Airflow 3.3's menu items (each with the MENU scope only)
RESOURCES = ("AdminView", "Asset", "AssetAlias", "Backfill", "Configuration", "Connection", "Custom", "Dag", "Menu",
             "Pool", "Team", "Variable", "View")
MENU_ITEMS = ("Required Actions", "Assets", "Audit Log", "Config", "Connections", "Dags", "Deadlines", "Docs", "Jobs",
              "Plugins", "Pools", "Providers", "Variables", "XComs")
MODEL = "sandbox.authz"  # the client's attribute holding the digest of the model it was made with
# a caller's token: `roles` carries realm_access (role policies read it), `profile` the preferred_username Airflow
# records as the run's triggering user
CALLER_SCOPES = ("basic", "profile", "roles", "service_account")
# The sandbox drives Airflow through the very faults it reproduces (a skewed IdP clock, a rotated signing key): its
# own caller's token, kept by the CLI, lasts an hour whatever the realm's lifespan, as a platform's robot account
# would; the accounts of the spec keep the realm's.
CALLER_LIFESPAN = 3600
# Keycloak's lightweight access tokens (a client attribute): they leave out what mappers add, the audience included
LIGHTWEIGHT = "client.use.lightweight.access.token.enabled"


def _permission(name: str, policies: list[str], *, scopes: tuple[str, ...] = (), resources: tuple[str, ...] = (),
                strategy: str = "UNANIMOUS") -> dict:
    config = {"applyPolicies": json.dumps(policies)}
    if scopes:
        config["scopes"] = json.dumps(list(scopes))
    if resources:
        config["resources"] = json.dumps(list(resources))
    return {"name": name, "type": "scope" if scopes else "resource", "logic": "POSITIVE",
            "decisionStrategy": strategy, "config": config}


def authorization(s: AirflowSignIn) -> dict:
    """The resource server of Airflow's client, as Keycloak imports it."""
    policies = [{"name": f"Allow-{r}", "type": "role", "logic": "POSITIVE", "decisionStrategy": "UNANIMOUS",
                 "config": {"roles": json.dumps([{"id": r, "required": False}])}} for r in s.roles]
    policies += [
        _permission("ReadOnly", ["Allow-Viewer", "Allow-User", "Allow-Op", "Allow-Admin"],
                    scopes=("GET", "MENU", "LIST"), strategy="AFFIRMATIVE"),
        _permission("Admin", ["Allow-Admin", "Allow-SuperAdmin"], scopes=SCOPES, strategy="AFFIRMATIVE"),
        _permission("User", ["Allow-User"], resources=("Dag", "Asset")),
        _permission("Op", ["Allow-Op"], resources=("Connection", "Pool", "Variable", "Backfill")),
    ]
    for caller in sorted({c for c, _ in s.dag_grants} | set(s.asset_callers)):
        policies.append({"name": f"Client-{caller}", "type": "client", "logic": "POSITIVE",
                         "config": {"clients": json.dumps([caller])}})
    for caller, dags in s.dag_grants:  # a caller granted DAGs: their runs and nothing else (no role at all)
        pattern = "^(" + "|".join(re.escape(d) for d in dags) + ")$"
        policies += [
            # Airflow pushes the DAG's id as the claim `resource_id` with each question it asks
            {"name": f"Dags-of-{caller}", "type": "regex", "logic": "POSITIVE",
             "config": {"targetClaim": "resource_id", "pattern": pattern, "targetContextAttributes": "true"}},
            {"name": f"{caller}-on-its-dags", "type": "aggregate", "logic": "POSITIVE", "decisionStrategy": "UNANIMOUS",
             "config": {"applyPolicies": json.dumps([f"Client-{caller}", f"Dags-of-{caller}"])}},
            _permission(f"Runs-of-{caller}", [f"{caller}-on-its-dags"], scopes=("GET", "POST"), resources=("Dag",)),
        ]
    for caller in s.asset_callers:
        # Airflow asks `Asset#POST` with no asset for an event (the id is in the body), and `Asset#LIST` with
        # `AssetAlias#LIST` for the list the gateway resolves a URI through: which assets is the gateway's check
        policies.append(_permission(f"Asset-events-of-{caller}", [f"Client-{caller}"], scopes=("GET", "LIST", "POST"),
                                    resources=("Asset", "AssetAlias")))
    return {"allowRemoteResourceManagement": False, "policyEnforcementMode": "ENFORCING",
            "decisionStrategy": "AFFIRMATIVE", "scopes": [{"name": x} for x in SCOPES],
            "resources": [{"name": r, "scopes": [{"name": x} for x in SCOPES if x != "MENU"]} for r in RESOURCES]
            + [{"name": m, "scopes": [{"name": "MENU"}]} for m in MENU_ITEMS],
            "policies": policies}


def model_digest(s: AirflowSignIn, airflow_url: str) -> str:
    return hashlib.sha256(json.dumps([authorization(s), airflow_url], sort_keys=True).encode()).hexdigest()[:16]


def airflow_client(s: AirflowSignIn, airflow_url: str, secret: str) -> dict:
    """Airflow's client: people sign in through it (the browser's code flow, and the password grant Airflow's
    /auth/token offers), and its secret is the one Airflow was started with."""
    return {"clientId": s.client_id, "description": "Airflow's Keycloak auth manager, managed by airflow-tyk-sandbox",
            "enabled": True, "protocol": "openid-connect", "publicClient": False, "secret": secret,
            "clientAuthenticatorType": "client-secret", "standardFlowEnabled": True,
            "directAccessGrantsEnabled": True, "serviceAccountsEnabled": True, "implicitFlowEnabled": False,
            "authorizationServicesEnabled": True, "redirectUris": [f"{airflow_url}/*"],
            "attributes": {MANAGED: "true", MODEL: model_digest(s, airflow_url),
                           "post.logout.redirect.uris": f"{airflow_url}/*"},
            "defaultClientScopes": ["basic", "profile", "email", "roles"],
            "authorizationSettings": authorization(s)}


def caller_client(s: AirflowSignIn, client_id: str, secret: str | None) -> dict:
    """A client whose service account calls Airflow: its tokens carry Airflow's client as audience. `secret`: the
    one the sandbox chose for it (its own caller's), else Keycloak makes one."""
    own = client_id in s.admins  # the sandbox's own: its tokens outlive the realm's short ones (see CALLER_LIFESPAN)
    return {"clientId": client_id, **({"secret": secret} if secret else {}),
            "description": "calls Airflow's API, managed by airflow-tyk-sandbox",
            "enabled": True, "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": True,
            "standardFlowEnabled": False, "directAccessGrantsEnabled": False, "implicitFlowEnabled": False,
            "attributes": {MANAGED: "true", **({"access.token.lifespan": str(CALLER_LIFESPAN)} if own else {})},
            "defaultClientScopes": list(CALLER_SCOPES),
            "protocolMappers": [airflow_mapper_payload(s.client_id)]}


def steps(admin: KeycloakAdmin, desired: Desired, airflow_url: str, secret: str | None, caller_secrets: dict[str, str],
          password_of: Callable[[str], str], realm_is_new: bool) -> list[Step]:
    """What brings Airflow's realm to the sign-in the plan wants. `secret`: Airflow's client's (None: a plan, which
    does not compare it); `caller_secrets`: those the sandbox chose; `password_of`: a person's, asked when the step
    runs; `realm_is_new`: created by an earlier step of this apply, so nothing is read."""
    s = desired.sign_in
    if s is None:
        return []
    people = [p for p in desired.people if p.realm == s.realm]
    if realm_is_new:
        return [_roles_step(admin, s, s.roles), _airflow_client_step(admin, s, airflow_url, secret, None),
                *(_caller_step(admin, s, c, caller_secrets.get(c)) for c in s.callers),
                *(_person_step(admin, p, password_of) for p in people)]
    admin.change_current_realm(s.realm)
    out: list[Step] = []
    have_roles = {r["name"] for r in admin.get_realm_roles()}
    if missing := tuple(r for r in s.roles if r not in have_roles):
        out.append(_roles_step(admin, s, missing))
    clients = {c["clientId"]: c for c in admin.get_clients()}
    live = clients.get(s.client_id)
    if live is None or (_managed(live) and ((live.get("attributes") or {}).get(MODEL) != model_digest(s, airflow_url)
                                            or (secret is not None and _secret(admin, live) != secret))):
        out.append(_airflow_client_step(admin, s, airflow_url, secret, live and live["id"]))
    for caller in s.callers:
        if caller not in clients:
            out.append(_caller_step(admin, s, caller, caller_secrets.get(caller)))
        elif _managed(live_caller := clients[caller]) and (
                caller_secrets.get(caller) not in (None, _secret(admin, live_caller))
                or (live_caller.get("attributes") or {}).get("access.token.lifespan")
                != caller_client(s, caller, None)["attributes"].get("access.token.lifespan")):
            out.append(_caller_fix_step(admin, s, caller, live_caller["id"], caller_secrets.get(caller)))
    users = {u["username"]: u for u in admin.get_users({"max": 1000})}
    for p in people:
        if p.name not in users:
            out.append(_person_step(admin, p, password_of))
        elif _managed_user(users[p.name]) and p.role not in _realm_roles_of(admin, users[p.name]["id"]):
            out.append(_role_step(admin, p, users[p.name]["id"]))
    wanted = {p.name for p in people}
    for name, u in users.items():
        if name not in wanted and _managed_user(u):
            out.append(Step(Change("keycloak", "delete", "person", f"{s.realm}/{name}"),
                            _in_realm(admin, s.realm, lambda a, i=u["id"]: a.delete_user(i))))
    admin.change_current_realm("master")
    return out


def _secret(admin: KeycloakAdmin, client: dict) -> str | None:
    return admin.get_client_secrets(client["id"]).get("value")


def _managed(obj: dict) -> bool:
    return (obj.get("attributes") or {}).get(MANAGED) == "true"


PEOPLE_DOMAIN = "@people.sandbox.invalid"  # the sandbox's people: Keycloak 26 drops attributes its user profile lacks


def _managed_user(u: dict) -> bool:
    return (u.get("email") or "").endswith(PEOPLE_DOMAIN)


def _realm_roles_of(admin: KeycloakAdmin, user_id: str) -> set[str]:
    return {r["name"] for r in admin.get_realm_roles_of_user(user_id)}


def _in_realm(admin: KeycloakAdmin, realm: str, fn):
    def run() -> None:
        admin.change_current_realm(realm)
        fn(admin)

    return run


def _roles_step(admin: KeycloakAdmin, s: AirflowSignIn, roles: tuple[str, ...]) -> Step:
    def make(a: KeycloakAdmin) -> None:
        for r in roles:
            a.create_realm_role({"name": r, "description": f"Airflow's {r} (its Keycloak auth manager)",
                                 "attributes": {MANAGED: ["true"]}}, skip_exists=True)

    return Step(Change("keycloak", "create", "roles", f"{s.realm}/{','.join(roles)}", "Airflow's roles"),
                _in_realm(admin, s.realm, make))


def _airflow_client_step(admin: KeycloakAdmin, s: AirflowSignIn, airflow_url: str, secret: str,
                         uuid: str | None) -> Step:
    """Create Airflow's client; one of an older model is replaced whole (its uuid changes, nothing refers to it)."""
    def make(a: KeycloakAdmin) -> None:
        if uuid:
            a.delete_client(uuid)
        a.create_client(airflow_client(s, airflow_url, secret), skip_exists=True)

    return Step(Change("keycloak", "update" if uuid else "create", "client", f"{s.realm}/{s.client_id}",
                       "Airflow's auth manager: its authorization model, sign-in URLs and secret"),
                _in_realm(admin, s.realm, make))


def _caller_step(admin: KeycloakAdmin, s: AirflowSignIn, caller: str, secret: str | None) -> Step:
    def make(a: KeycloakAdmin) -> None:
        uuid = a.create_client(caller_client(s, caller, secret), skip_exists=True) or a.get_client_id(caller)
        if caller in s.admins:
            user = a.get_client_service_account_user(uuid)
            a.assign_realm_roles(user["id"], [a.get_realm_role("Admin")])

    return Step(Change("keycloak", "create", "client", f"{s.realm}/{caller}",
                       "calls Airflow's API" + (" as Airflow's Admin" if caller in s.admins else "")),
                _in_realm(admin, s.realm, make))


def _caller_fix_step(admin: KeycloakAdmin, s: AirflowSignIn, caller: str, uuid: str, secret: str | None) -> Step:
    """A caller's secret (the one the sandbox chose) and token lifespan as the sign-in wants them."""
    def put(a: KeycloakAdmin) -> None:
        live = a.get_client(uuid)
        want = caller_client(s, caller, secret)
        # Keycloak merges attributes on update: a lifespan override is cleared by setting it empty
        attributes = {**(live.get("attributes") or {}), "access.token.lifespan": "", **want["attributes"]}
        a.update_client(uuid, {**live, **({"secret": secret} if secret else {}), "attributes": attributes})

    return Step(Change("keycloak", "update", "client", f"{s.realm}/{caller}", "its secret and token lifespan"),
                _in_realm(admin, s.realm, put))


def _person_step(admin: KeycloakAdmin, p: KeycloakPerson, password_of: Callable[[str], str]) -> Step:
    def make(a: KeycloakAdmin) -> None:
        password = password_of(p.name)
        user_id = a.create_user({"username": p.name, "enabled": True, "emailVerified": True,
                                 "email": p.name + PEOPLE_DOMAIN, "firstName": p.name, "lastName": "Sandbox",
                                 "credentials": [{"type": "password", "value": password, "temporary": False}]},
                                exist_ok=True)
        a.assign_realm_roles(user_id, [a.get_realm_role(p.role)])

    return Step(Change("keycloak", "create", "person", f"{p.realm}/{p.name}", f"signs in to Airflow as {p.role}"),
                _in_realm(admin, p.realm, make))


def _role_step(admin: KeycloakAdmin, p: KeycloakPerson, user_id: str) -> Step:
    def fix(a: KeycloakAdmin) -> None:
        had = [r for r in a.get_realm_roles_of_user(user_id) if r["name"] in ("SuperAdmin", "Viewer", "User", "Op",
                                                                             "Admin")]
        if had:
            a.delete_realm_roles_of_user(user_id, had)
        a.assign_realm_roles(user_id, [a.get_realm_role(p.role)])

    return Step(Change("keycloak", "update", "person", f"{p.realm}/{p.name}", f"role -> {p.role}"),
                _in_realm(admin, p.realm, fix))
