from sandbox.scenarios.base import Pick, Scenario, ScenarioContext, Symptom


class CrossEnvironment(Scenario):
    name = "cross-environment"
    pick = Pick(env=1)  # another environment than the first
    story = ("A copy-paste left the prod route's credentials pointing at dev: the task fetches a dev token and "
             "sends it to the prod route.")
    cause = "a dev token on a prod route: signed with the dev realm's key, which prod's JWKS does not hold"
    fix = "fetch the token from the realm of the route's environment (`sandbox apply` rewrites the routes file)"
    expected = Symptom("gateway", 403, "HTTP 403 Key not authorized", "failed at gateway: HTTP 403")
    doctor_says = "entry in sandbox_routes.json differs from the spec"

    def inject(self, ctx: ScenarioContext) -> None:
        routes = ctx.routes()
        first = routes[Pick().choose(ctx.spec).conn_id]  # the first environment's: another realm's
        routes[self.connection].update(token_url=first["token_url"], credential_variable=first["credential_variable"])
        ctx.write_routes(routes)
