from sandbox.plan import AUDIENCE
from sandbox.scenarios.base import Pick, Scenario, ScenarioContext, Symptom
from sandbox.systems.keycloak.applier import AUDIENCE_MAPPER


class WrongAudience(Scenario):
    name = "wrong-audience"
    pick = Pick(service=1)  # a second service
    story = ("The airflow client was re-created from an old export without its audience mapper. Tokens are issued "
             "and look fine, but the gateway refuses every one of them.")
    cause = "the token's `aud` lacks the audience the gateway's API requires"
    fix = "add the audience mapper back to the client (`sandbox apply` does)"
    expected = Symptom("gateway", 401, "Key not authorized: audience claim is required but not present in token",
                       "failed at gateway: HTTP 401")
    doctor_says = f"lacks '{AUDIENCE}'"  # the claims hop: "aud [...] lacks '<the gateway's audience>'"
    differs = ("connections.*.token.aud",)

    def inject(self, ctx: ScenarioContext) -> None:
        admin = ctx.keycloak(self.target.env)
        uuid = admin.get_client_id(self.target.client_id)
        mapper = next(m for m in admin.get_mappers_from_client(uuid) if m["name"] == AUDIENCE_MAPPER)
        admin.remove_client_mapper(uuid, mapper["id"])
