from sandbox.apply.keycloak import AUDIENCE_MAPPER
from sandbox.scenarios.base import Context, Scenario, Symptom


class WrongAudience(Scenario):
    name = "wrong-audience"
    connection = "tyk_dev_billing"
    story = ("The airflow client was re-created from an old export without its audience mapper. Tokens are issued "
             "and look fine, but the gateway refuses every one of them.")
    cause = "the token's `aud` lacks the audience the gateway's API requires"
    fix = "add the audience mapper back to the client (`sandbox apply` does)"
    expected = Symptom("gateway", 401, "Key not authorized: audience claim is required but not present in token",
                       "failed at gateway: HTTP 401")
    doctor_says = "The gateway would refuse airflow's token in dev: aud"

    def inject(self, ctx: Context) -> None:
        admin = ctx.keycloak("dev")
        uuid = admin.get_client_id("airflow")
        mapper = next(m for m in admin.get_mappers_from_client(uuid) if m["name"] == AUDIENCE_MAPPER)
        admin.remove_client_mapper(uuid, mapper["id"])
