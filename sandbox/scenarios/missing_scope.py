from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom


class MissingScope(Scenario):
    name = "missing-scope"
    story = ("Someone tidied up the airflow client in Keycloak's console and removed orders.write. The connection "
             "still asks for it, so no token is issued at all.")
    cause = "the client no longer has a scope its connection asks for"
    fix = "give the client its scopes back (`sandbox apply` restores them from the spec)"
    expected = Symptom("token", None, "HTTP 400 invalid_scope", "failed at token")

    @property
    def doctor_says(self) -> str:  # type: ignore[override]
        return f"will not grant {self.target.client_id} the scopes its connection asks for"

    def inject(self, ctx: ScenarioContext) -> None:
        admin = ctx.keycloak(self.target.env)
        uuid = admin.get_client_id(self.target.client_id)
        removed = sorted(self.target.scope.split())[-1]  # one scope its connection asks for
        scope = next(s["id"] for s in admin.get_client_scopes() if s["name"] == removed)
        admin.delete_client_default_client_scope(uuid, scope)
