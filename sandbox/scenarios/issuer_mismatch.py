from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.tyk.applier import SCHEME


class IssuerMismatch(Scenario):
    name = "issuer-mismatch"
    story = ("The gateway was configured with Keycloak's address as `localhost`, the tokens are issued as "
             "`127.0.0.1`: the same realm, the same keys, and still every call is refused.")
    cause = "the token's `iss` is not the issuer the gateway's API trusts (another host name for the same Keycloak)"
    fix = "use one issuer URL everywhere: Keycloak's --hostname and the API's allowed issuers (`sandbox apply`)"
    expected = Symptom("gateway", 401, "Key not authorized: invalid issuer claim", "failed at gateway: HTTP 401")

    @property
    def doctor_says(self) -> str:  # type: ignore[override]
        return f"The gateway does not match the spec: API {self.api_id} differs"

    def inject(self, ctx: ScenarioContext) -> None:
        gw = ctx.clients.tyk
        api = gw.call("GET", f"/apis/oas/{self.api_id}").json()
        jwt = api["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"][SCHEME]
        jwt["allowedIssuers"] = [i.replace("127.0.0.1", "localhost") for i in jwt["allowedIssuers"]]
        gw.call("PUT", f"/apis/oas/{self.api_id}", json=api)
        gw.reload()
