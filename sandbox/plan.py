"""Spec -> the desired objects in Keycloak, Tyk and Airflow. Pure: no I/O, only data in and out.

Conventions (documented in the README):
- Keycloak realm = environment name; client id = account name; client scope = spec scope name.
- Tyk API id `<env>-<service>`, listen path `/<env>/<service>/`; policy id `<env>-<account>-<service>`.
- Airflow connection id `tyk_<env>_<service>`, using the spec's Airflow account.
- Every object carries a managed mark (`sandbox.managed`; an Airflow connection's description starts with
  CONNECTION_MARK); apply never touches objects without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sandbox.runtime.base import Endpoints
from sandbox.spec import AIRFLOW_SERVICE, BUNDLED, ROLES, Grant, Spec

AUDIENCE = "sandbox-gateway"  # the `aud` every token must carry for the gateway
MANAGED = "sandbox.managed"
CONNECTION_MARK = "[managed by airflow-tyk-sandbox]"  # an Airflow connection's description starts with it
# Request headers the gateway records as analytics tags: which DAG, task and run made a call.
AUDIT_HEADERS = ("X-Airflow-Dag-Id", "X-Airflow-Task-Id", "X-Airflow-Run-Id")
# Airflow's own client in its realm: its Keycloak auth manager's, which people sign in through and which holds the
# authorization model (docs/plans/inbound.md)
AIRFLOW_CLIENT = "airflow-server"
# the sandbox's CLI and pytest plugin call Airflow's API as this client's service account (Airflow's Admin)
SANDBOX_CALLER = "sandbox"


# ---- a realm's OIDC URLs, as Keycloak lays them out (pure: planning, clients and tests build them alike) ------
def issuer(keycloak_url: str, realm: str) -> str:
    return f"{keycloak_url}/realms/{realm}"


def token_url(keycloak_url: str, realm: str) -> str:
    return token_endpoint(issuer(keycloak_url, realm))


def token_endpoint(issuer_url: str) -> str:
    return f"{issuer_url}/protocol/openid-connect/token"


def jwks_url(keycloak_url: str, realm: str) -> str:
    return f"{issuer(keycloak_url, realm)}/protocol/openid-connect/certs"


@dataclass(frozen=True)
class Addresses:
    """Where the live stack answers: plain data handed in by the caller, so planning stays pure."""

    keycloak_url: str  # as the host reaches it: the issuer every token carries
    gateway_host: str  # the gateway, as Airflow's tasks reach it
    gateway_port: int
    upstream_url: str  # as the gateway reaches it
    keycloak_inner_url: str = ""  # as the gateway (JWKS) and Airflow's tasks (tokens) reach it; '' = keycloak_url
    airflow_inner_url: str = "http://airflow"  # Airflow's API as the gateway reaches it (the inbound route's upstream)

    @property
    def keycloak_for_components(self) -> str:
        return self.keycloak_inner_url or self.keycloak_url

    @classmethod
    def nowhere(cls) -> Addresses:
        """For what does not depend on where the stack answers: names and ids (a plan's connection ids)."""
        return cls("http://keycloak", "gateway", 80, "http://upstream")

    @classmethod
    def of(cls, endpoints: Endpoints) -> Addresses:
        gateway = urlsplit(endpoints.inner("tyk"))
        return cls(keycloak_url=endpoints.url("keycloak"), gateway_host=gateway.hostname or "127.0.0.1",
                   gateway_port=gateway.port or 80, upstream_url=endpoints.inner("upstream"),
                   keycloak_inner_url=endpoints.inner("keycloak"),
                   airflow_inner_url=endpoints.inner("airflow") if "airflow" in endpoints.components else "")


@dataclass(frozen=True)
class KeycloakRealm:
    realm: str
    access_token_lifespan: int


@dataclass(frozen=True)
class KeycloakScope:
    realm: str
    name: str


@dataclass(frozen=True)
class KeycloakClient:
    realm: str
    client_id: str
    description: str
    scopes: tuple[str, ...]  # client scopes of the spec's grants (sorted); `basic` is always added
    audience: str = AUDIENCE
    airflow_audience: str = ""  # a caller into Airflow: Airflow's client too, in `aud` (its exchange checks it)


@dataclass(frozen=True)
class KeycloakPerson:
    """A realm user who signs in to Airflow's UI, with one of Airflow's roles (a realm role)."""

    realm: str
    name: str
    role: str


@dataclass(frozen=True)
class AirflowSignIn:
    """Airflow's side in Keycloak: its client in its realm with Airflow's authorization model (the roles, resources,
    scopes and permissions of the provider's `create-all`), and the clients allowed to exchange their Keycloak token
    for an Airflow one (its `jwt_federated_client_ids`)."""

    realm: str
    client_id: str
    roles: tuple[str, ...]
    callers: tuple[str, ...]  # the allow-list; the sandbox's own first
    admins: tuple[str, ...]  # callers whose service account holds Airflow's Admin role
    dag_grants: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (caller, DAG ids it may trigger and read)
    asset_callers: tuple[str, ...] = ()  # callers that may post asset events (which assets: the gateway's policy)

    def clients(self) -> tuple[str, ...]:
        return (self.client_id, *self.callers)

    def handoff(self) -> dict:
        """What Airflow's processes read of it (the lib folder's auth file): no secret."""
        return {"realm": self.realm, "client_id": self.client_id, "federated_client_ids": list(self.callers)}


@dataclass(frozen=True)
class TykApi:
    api_id: str
    env: str
    service: str
    listen_path: str
    upstream_url: str
    issuer: str
    jwks_url: str
    audience: str
    scope_policies: tuple[tuple[str, str], ...]  # (scope, policy id)
    tag_headers: tuple[str, ...] = AUDIT_HEADERS
    exchange_url: str = ""  # Airflow's API: the gateway swaps the caller's token for Airflow's there ('' = no swap)


@dataclass(frozen=True)
class TykPolicy:
    policy_id: str
    env: str
    account: str
    service: str
    api_id: str
    rate: int
    per: int
    quota_max: int  # -1: no quota
    quota_renewal_rate: int
    tags: tuple[str, ...]
    allowed: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (path pattern, methods); () = the whole API
    assets: tuple[str, ...] = ()  # on Airflow's API: the asset URIs whose events the caller may post


@dataclass(frozen=True)
class AirflowConnection:
    """An HTTP connection that Airflow's own HTTP hook and operator use unchanged: its host is the gateway
    route's base URL, and it carries nothing else the hook would send (every unknown extra key becomes a
    request header). How to get a token for it is the route's entry in the routes file (`route()`), read by
    the sandbox's secrets backend, which adds the token wherever tasks and triggers resolve the connection; the
    secret stays in the secrets backend."""

    conn_id: str
    env: str
    service: str
    url: str  # the gateway route, e.g. http://127.0.0.1:28082/dev/orders
    token_url: str
    client_id: str
    scope: str
    audience: str
    secret_key: str  # the Variable (secrets backend) holding the client secret

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[-1].split("/", 1)[-1]

    @property
    def description(self) -> str:
        # the sandbox's mark lives here, where the hook never looks
        return (f"{CONNECTION_MARK} {self.service} in {self.env} through the Tyk gateway; "
                "tasks and triggers get its bearer token from the sandbox's secrets backend")

    def route(self) -> dict:
        """This connection's entry in the routes file: how SandboxAuth gets its token. No secret."""
        return {"url": self.url, "env": self.env, "service": self.service, "token_url": self.token_url,
                "client_id": self.client_id, "scope": self.scope, "audience": self.audience,
                "credential_variable": self.secret_key}


@dataclass
class Desired:
    realms: list[KeycloakRealm] = field(default_factory=list)
    scopes: list[KeycloakScope] = field(default_factory=list)
    clients: list[KeycloakClient] = field(default_factory=list)
    apis: list[TykApi] = field(default_factory=list)
    policies: list[TykPolicy] = field(default_factory=list)
    connections: list[AirflowConnection] = field(default_factory=list)
    people: list[KeycloakPerson] = field(default_factory=list)
    sign_in: AirflowSignIn | None = None

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items() if isinstance(v, list)}


def connection_id(env: str, service: str) -> str:
    return f"tyk_{env}_{service}"


SECRET_PREFIX = "sandbox_client_secret_"


def secret_key(env: str, client_id: str) -> str:
    return f"{SECRET_PREFIX}{env}_{client_id}".replace("-", "_")


def policy_id(env: str, account: str, service: str) -> str:
    return f"{env}-{account}-{service}"


def api_id_of(env: str, service: str) -> str:
    """The gateway API (and its policies' prefix) of a service in an environment."""
    return f"{env}-{service}"


ASSET_EVENTS = "/api/v2/assets/events"  # Airflow's API: post an event of an asset (by id; the gateway resolves a URI)


def allowed_paths(g: Grant) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What a grant on Airflow's API lets its caller do there, as Airflow's REST API v2 lays it out (Tyk's
    allowed_urls patterns, matched without the listen path): trigger each DAG and read its runs; post asset events
    (which assets: the gateway's exchange checks the event's asset against the policy's list)."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for dag in g.dags:
        out += [(f"/api/v2/dags/{dag}/dagRuns", ("GET", "POST")), (f"/api/v2/dags/{dag}/dagRuns/{{run_id}}", ("GET",))]
    if g.assets:
        out.append((ASSET_EVENTS, ("POST",)))
    return tuple(out)


def plan(spec: Spec, at: Addresses) -> Desired:
    d = Desired()
    realm = spec.airflow_realm
    inbound = [g for g in spec.grants if g.inbound]
    callers = tuple(sorted({g.account for g in inbound}))
    d.sign_in = AirflowSignIn(realm, AIRFLOW_CLIENT, ("SuperAdmin", *ROLES), callers=(SANDBOX_CALLER, *callers),
                              admins=(SANDBOX_CALLER,),
                              dag_grants=tuple((g.account, g.dags) for g in inbound if g.dags),
                              asset_callers=tuple(sorted({g.account for g in inbound if g.assets})))
    d.people = [KeycloakPerson(realm, p.name, p.role) for p in spec.people.values()]
    for env_name, env in spec.environments.items():
        realm_issuer = issuer(at.keycloak_url, env_name)
        d.realms.append(KeycloakRealm(env_name, env.token_lifespan))
        # a grant into Airflow is served in Airflow's realm only (the spec checks its account is there)
        grants = [g for g in spec.grants_in(env_name) if not g.inbound or env_name == realm]
        for scope in sorted({s for g in grants for s in g.scopes}):
            d.scopes.append(KeycloakScope(env_name, scope))
        for account in spec.accounts.values():
            if env_name not in account.environments:
                continue
            scopes = sorted({s for g in grants if g.account == account.name for s in g.scopes})
            calls_airflow = env_name == realm and account.name in callers
            d.clients.append(KeycloakClient(env_name, account.name, account.description, tuple(scopes),
                                            airflow_audience=AIRFLOW_CLIENT if calls_airflow else ""))
        for service in spec.services.values():
            api_id = api_id_of(env_name, service.name)
            upstream = at.upstream_url + f"/anything/{service.name}" if service.upstream == BUNDLED \
                else service.upstream
            svc_grants = [g for g in grants if g.service == service.name]
            d.apis.append(TykApi(
                api_id=api_id, env=env_name, service=service.name, listen_path=f"/{env_name}/{service.name}/",
                upstream_url=upstream, issuer=realm_issuer, jwks_url=jwks_url(at.keycloak_for_components, env_name),
                audience=AUDIENCE,
                scope_policies=tuple(sorted((s, policy_id(env_name, g.account, service.name))
                                            for g in svc_grants for s in g.scopes)),
            ))
            for g in svc_grants:
                d.policies.append(TykPolicy(
                    policy_id=policy_id(env_name, g.account, service.name), env=env_name, account=g.account,
                    service=service.name, api_id=api_id, rate=g.rate.count, per=g.rate.per_seconds,
                    quota_max=g.quota.count if g.quota else -1,
                    quota_renewal_rate=g.quota.per_seconds if g.quota else -1,
                    tags=(f"env-{env_name}", f"account-{g.account}", f"service-{service.name}"),
                ))
            # Every service gets a connection, granted or not: a missing grant must show as a 403.
            if env_name in spec.accounts[spec.airflow_account].environments:
                mine = [g for g in svc_grants if g.account == spec.airflow_account]
                d.connections.append(AirflowConnection(
                    conn_id=connection_id(env_name, service.name), env=env_name, service=service.name,
                    url=f"http://{at.gateway_host}:{at.gateway_port}/{env_name}/{service.name}",
                    token_url=token_url(at.keycloak_for_components, env_name), client_id=spec.airflow_account,
                    scope=" ".join(sorted({s for g in mine for s in g.scopes})), audience=AUDIENCE,
                    secret_key=secret_key(env_name, spec.airflow_account),
                ))
        if env_name == realm and inbound:  # Airflow's own API, for the callers granted into it
            api_id = api_id_of(env_name, AIRFLOW_SERVICE)
            d.apis.append(TykApi(
                api_id=api_id, env=env_name, service=AIRFLOW_SERVICE, listen_path=f"/{env_name}/{AIRFLOW_SERVICE}/",
                upstream_url=at.airflow_inner_url, issuer=realm_issuer,
                jwks_url=jwks_url(at.keycloak_for_components, env_name), audience=AUDIENCE,
                scope_policies=tuple(sorted((s, policy_id(env_name, g.account, AIRFLOW_SERVICE))
                                            for g in inbound for s in g.scopes)),
                exchange_url=at.airflow_inner_url))
            d.policies += [TykPolicy(
                policy_id=policy_id(env_name, g.account, AIRFLOW_SERVICE), env=env_name, account=g.account,
                service=AIRFLOW_SERVICE, api_id=api_id, rate=g.rate.count, per=g.rate.per_seconds,
                quota_max=g.quota.count if g.quota else -1, quota_renewal_rate=g.quota.per_seconds if g.quota else -1,
                tags=(f"env-{env_name}", f"account-{g.account}", f"service-{AIRFLOW_SERVICE}"),
                allowed=allowed_paths(g), assets=g.assets) for g in inbound]
    return d
