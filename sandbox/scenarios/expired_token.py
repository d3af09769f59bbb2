from __future__ import annotations

import time

from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.airflow.token_helper import decode_claims

CACHE_PREFIX = "sandbox_repro_jwt_cache_"  # as in fixtures/dags/sandbox_repro.py


class ExpiredToken(Scenario):
    name = "expired-token"
    dag = "sandbox_repro_cached_token"
    story = ("To spare Keycloak, a DAG keeps its access token in an Airflow Variable and reuses it on every run. "
             "It worked all morning; once the token's lifespan had passed, every run failed at the gateway.")
    cause = "the task sends a token whose `exp` has passed: it was cached without its expiry"
    fix = ("refresh the token before it expires (SandboxAuth and ClientCredentialsAuth do), or fetch one per run; "
           "delete the stale Variable")
    expected = Symptom("gateway", 401, "HTTP 401 Key not authorized: token has expired", "failed at gateway: HTTP 401")
    doctor_says = "holds an access token that expired"

    def inject(self, ctx: ScenarioContext) -> None:
        # A real token from the realm, made to expire in a second instead of waiting out the realm's lifespan;
        # then waited for until its own `exp` says it has expired (no race: the claim decides).
        route = ctx.routes()[self.connection]
        previous = ctx.set_client_lifespan(self.connection, "1")
        try:
            token = ctx.token(route["client_id"], route["env"])
        finally:
            ctx.set_client_lifespan(self.connection, previous)
        while time.time() < decode_claims(token)["exp"] + 1:
            time.sleep(0.1)
        api = ctx.clients.airflow
        key = CACHE_PREFIX + self.connection
        api.call("DELETE", f"/variables/{key}", ok404=True)  # the baseline run cached a fresh one
        api.call("POST", "/variables", json={"key": key, "value": token})

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.clients.airflow.call("DELETE", f"/variables/{CACHE_PREFIX + self.connection}", ok404=True)

    def tidy(self, ctx: ScenarioContext) -> None:
        # the green run cached a fresh token the same careless way: left there, it is stale in five minutes
        self.revert(ctx)
