from sandbox.commands.rotation import invalidate_rotated
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom


class RotatedSecret(Scenario):
    name = "rotated-secret"
    story = ("Security rotated the airflow client's secret in Keycloak and invalidated the old one at once; the "
             "Airflow workers still hold the old one. Every task that calls a service now fails before the gateway.")
    cause = "the client secret Airflow serves to tasks is not the one Keycloak accepts any more"
    fix = ("redistribute the new secret to where Airflow reads it (`sandbox apply` does); next time rotate with "
           "`sandbox rotate`, which keeps the old secret valid until every reader has the new one")
    expected = Symptom("token", None, "HTTP 401 unauthorized_client", "failed at token")
    doctor_says = "it was rotated in Keycloak and Airflow still has the old one"

    def inject(self, ctx: ScenarioContext) -> None:
        admin = ctx.keycloak(self.target.env)
        uuid = admin.get_client_id(self.target.client_id)
        admin.generate_client_secrets(uuid)  # the realm's rotation policy keeps the old secret valid: not here
        invalidate_rotated(admin, self.target.env, uuid)
