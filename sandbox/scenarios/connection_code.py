"""Bugs of how a DAG uses the connection the sandbox hands it: a token taken at task start and used after it
expired, and a connection extra the HTTP provider sends to the service as a request header."""

from __future__ import annotations

import json

from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom

TOKEN_AT_START_DAG = "sandbox_repro_token_at_start"
SHORT_LIFESPAN = "2"  # seconds: shorter than the DAG's 3 s of work between taking the token and using it
LEAKED_EXTRA = {"client_secret": "copied-from-the-team-wiki"}


class TokenExpiresMidTask(Scenario):
    name = "token-expires-mid-task"
    dag = TOKEN_AT_START_DAG
    story = ("A long task reads the connection's token once at its start and calls the service when its work is "
             "done. It passed for months; once the IdP's token lifespan was cut below the task's run time, every "
             "call at the end of the task is refused — and a retry, starting afresh, sometimes passes.")
    cause = "the task sends the token it took at its start after that token's `exp`: a token is only good until then"
    fix = ("resolve the connection when you call (HttpHook and HttpOperator do, on every call; the sandbox refreshes "
           "the token before it expires), never keep a token across long work")
    expected = Symptom("gateway", 401, "HTTP 401 Key not authorized: token has expired", "failed at gateway: HTTP 401")
    doctor_says = "a lifespan override on the client"

    def inject(self, ctx: ScenarioContext) -> None:
        ctx.set_client_lifespan(self.connection, SHORT_LIFESPAN)

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.set_client_lifespan(self.connection, "")


class ExtraSentAsHeader(Scenario):
    name = "extra-sent-as-header"
    story = ("Someone completed the connection in the UI, putting the client secret into its Extra \"so the next "
             "person finds it\". Every call still passes — and every call now hands the secret to the service, "
             "whose access log keeps it.")
    cause = ("Airflow's HTTP hooks send every connection extra key they do not know as a request header: the extra's "
             "client_secret goes to the service with each call")
    fix = ("keep the connection's extra empty (`sandbox apply` clears it); secrets belong in the secrets backend, and "
           "the sandbox adds the credential itself")
    expected = Symptom("upstream", 200, "received the connection's extra client_secret as a request header",
                       "failed at upstream")
    doctor_says = "differs from the spec (extra)"

    def inject(self, ctx: ScenarioContext) -> None:
        api = ctx.clients.airflow
        live = api.call("GET", f"/connections/{self.connection}").json()
        api.call("PATCH", f"/connections/{self.connection}", json={**live, "extra": json.dumps(LEAKED_EXTRA)})
