"""How the gateway gets the realm's signing keys: a JWKS it caches, and how that goes wrong."""

from __future__ import annotations

import requests

from sandbox.commands.rotation import rotate_signing_keys
from sandbox.errors import SandboxError
from sandbox.plan import api_id_of
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.keycloak.realm_keys import KEY_PROVIDER
from sandbox.systems.tyk.applier import SCHEME

ROTATED_KEY = "sandbox-repro-rotated-key"  # the key provider the rotation adds


def _api_id(ctx: ScenarioContext, conn_id: str) -> str:
    route = ctx.routes()[conn_id]
    return api_id_of(route["env"], route["service"])


def cache_on_every_replica(ctx: ScenarioContext, conn_id: str) -> None:
    """The gateway (each replica of a replicated one) caches the realm's JWKS as it is now, for a whole cacheTimeout:
    its cache flushed, then one granted call through each. Without the flush, a JWKS cached minutes ago (by an
    earlier run) could expire during the scenario and be fetched again with the rotated key: green; without a call
    through each replica, one never called would fetch the rotated keys and pass — either way the outcome would hang
    on timing or on which replica serves the task."""
    route = ctx.routes()[conn_id]
    token = ctx.token(route["client_id"], route["env"])
    inner = ctx.endpoints.inner("tyk")
    ctx.clients.tyk.forget_jwks(_api_id(ctx, conn_id))  # every replica
    tyk = ctx.endpoints.components["tyk"]
    targets = {f"gateway replica {pod}": url for pod, url in tyk.replicas.items()} or {"the gateway": tyk.url}
    for target, url in targets.items():
        r = requests.get(f"{url}{route['url'].removeprefix(inner)}/get",
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if r.status_code != 200:
            raise SandboxError(f"{conn_id} is refused by {target} before the rotation: HTTP "
                               f"{r.status_code} {r.text[:200]}.", "`sandbox doctor` names why; `sandbox apply` "
                               "usually repairs it.")


class SigningKeyRotation(Scenario):
    name = "signing-key-rotation"
    story = ("Keycloak's signing key was rotated on schedule. Tokens are issued as before, but for the next minutes "
             "every call through the gateway is refused, and then it heals by itself.")
    cause = ("tokens are signed with the realm's new key, whose `kid` is not in the JWKS the gateway cached "
             "(it keeps it for its cacheTimeout and does not refetch on an unknown kid)")
    fix = ("rotate with overlap: add the new key passive, wait out the gateway's JWKS cache, then make it active; "
           "or flush the cache (`DELETE /tyk/cache/jwks/<api>`)")
    expected = Symptom("gateway", 403, "HTTP 403 Key not authorized", "failed at gateway: HTTP 403")
    doctor_says = "cached JWKS"
    differs = ("idp.*.signing_keys",)

    def inject(self, ctx: ScenarioContext) -> None:
        # The gateway caches the realm's JWKS; a new key of higher priority signs from now.
        cache_on_every_replica(ctx, self.connection)
        add_signing_key(ctx, self.connection)

    def revert(self, ctx: ScenarioContext) -> None:
        remove_signing_key(ctx, self.connection)
        ctx.clients.tyk.forget_jwks(_api_id(ctx, self.connection))


def add_signing_key(ctx: ScenarioContext, conn_id: str) -> None:
    """A new active key of higher priority in the connection's realm: tokens are signed with it from now on."""
    realm = ctx.routes()[conn_id]["env"]
    admin = ctx.keycloak(realm)
    admin.create_component({
        "name": ROTATED_KEY, "providerId": "rsa-generated", "providerType": KEY_PROVIDER,
        "parentId": admin.get_realm(realm)["id"],
        "config": {"priority": ["1000"], "keySize": ["2048"], "active": ["true"], "enabled": ["true"],
                   "algorithm": ["RS256"]}})


def remove_signing_key(ctx: ScenarioContext, conn_id: str) -> None:
    admin = ctx.keycloak(ctx.routes()[conn_id]["env"])
    for c in admin.get_components({"type": KEY_PROVIDER, "name": ROTATED_KEY}):
        admin.delete_component(c["id"])


class SplitGatewayCache(Scenario):
    name = "split-gateway-cache"
    story = ("After a signing-key rotation the on-call engineer flushed the gateway's JWKS cache and checked: calls "
             "pass. An hour later half of the tasks still fail with 403 and the other half pass, and re-running a "
             "failed task sometimes fixes it. There are two gateway replicas; the flush reached one.")
    cause = ("each gateway replica caches the realm's JWKS on its own: the replica the flush reached fetched the new "
             "key, the other still holds the old keys and refuses every token signed with the new one — which "
             "replica serves a task's call decides its outcome")
    fix = ("flush the JWKS cache on every replica (`DELETE /tyk/cache/jwks/<api>` to each pod, not to the Service), "
           "or rotate with overlap (`sandbox rotate --signing-key`) so no replica needs a flush")
    expected = Symptom("gateway", 403, "HTTP 403 Key not authorized", "failed at gateway: HTTP 403")
    doctor_says = "gateway replicas disagree"
    runtimes = ("kubernetes",)
    needs = ("the kubernetes runtime: the gateway runs as two replicas there (one a node); elsewhere it is one "
             "process")

    def inject(self, ctx: ScenarioContext) -> None:
        replicas = ctx.endpoints.components["tyk"].replicas
        if len(replicas) < 2:
            raise SandboxError(f"{self.name} needs two gateway replicas; this sandbox runs {len(replicas)}.",
                               "run it on a cluster with two schedulable nodes (the gateway runs one a node).")
        (fresh, fresh_url), (stale, _) = list(replicas.items())[:2]
        cache_on_every_replica(ctx, self.connection)
        add_signing_key(ctx, self.connection)
        ctx.clients.tyk.one(fresh_url).forget_jwks(_api_id(ctx, self.connection))  # the flush that reached one replica
        # Made deterministic: the Service sends the tasks' calls to the replica the flush missed (on a live
        # cluster, kube-proxy's random pick between the two).
        ctx.runtime.serve_only("tyk", stale)  # type: ignore[attr-defined]

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.serve_only("tyk", None)  # type: ignore[attr-defined]
        remove_signing_key(ctx, self.connection)
        ctx.clients.tyk.forget_jwks(_api_id(ctx, self.connection))  # every replica


class PlainJwksUrl(Scenario):
    name = "plain-jwks-url"
    story = ("An API was set up by hand with the realm's JWKS URL pasted into the JWT `source` field. It was tested "
             "once and worked; in production every call after the first one is refused.")
    cause = ("Tyk expects `source` base64-encoded: a plain URL is fetched on the first call, but read back from the "
             "cache as base64, which fails, for every call until the cache expires")
    fix = "give the JWKS URL as `jwksURIs` (`sandbox apply` does), or base64-encode it in `source`"
    expected = Symptom("gateway", 403, "HTTP 403 Key not authorized", "failed at gateway: HTTP 403")
    doctor_says = "plain URL in `source`"

    def inject(self, ctx: ScenarioContext) -> None:
        gw = ctx.clients.tyk
        api_id = _api_id(ctx, self.connection)
        api = gw.call("GET", f"/apis/oas/{api_id}").json()
        jwt = api["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"][SCHEME]
        jwt["source"] = jwt.pop("jwksURIs")[0]["url"]
        gw.call("PUT", f"/apis/oas/{api_id}", json=api)
        gw.reload()
        # It works once: the first call after the change fetches the JWKS (that is why a quick test passed).
        route = ctx.routes()[self.connection]
        token = ctx.token(route["client_id"], route["env"])
        first = requests.get(f"{ctx.endpoints.to_host(route['url'])}/get", headers={"Authorization": f"Bearer {token}"},
                             timeout=30)
        if first.status_code != 200:
            raise SandboxError(f"{self.name}: the first call after the change should pass, it got HTTP "
                               f"{first.status_code} {first.text[:200]}.")


class RotationWithoutGrace(Scenario):
    name = "rotation-without-grace"
    story = ("The platform team rotated the realm's signing key the quick way: a new key, active at once, and the old "
             "one deleted in the same change. Keycloak is happy; every call through the gateway is refused — while "
             "a long-running job that still holds an old token keeps working.")
    cause = ("the new key signed tokens before the gateway had it: its cached JWKS holds only the deleted key (it "
             "does not refetch on an unknown `kid`), so new tokens are refused and old ones still pass")
    fix = ("rotate with overlap — `sandbox rotate --signing-key`: new key passive, the gateway's JWKS refreshed, then "
           "active, the old key retired after the longest token lifespan; now: flush the gateway's JWKS cache "
           "(`DELETE /tyk/cache/jwks/<api>`)")
    expected = Symptom("gateway", 403, "HTTP 403 Key not authorized", "failed at gateway: HTTP 403")
    doctor_says = "cached JWKS"

    def inject(self, ctx: ScenarioContext) -> None:
        # what `sandbox rotate --signing-key --now` does, once the gateway has cached the old keys
        cache_on_every_replica(ctx, self.connection)
        rotate_signing_keys(ctx.spec, ctx.endpoints, ctx.paths, [self.target.env], True, lambda *_: None)

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.clients.tyk.forget_all_jwks()  # the new key stays (a rotation is not undone): the gateway fetches it
