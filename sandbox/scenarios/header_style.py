"""Two bugs of DAGs that put the bearer token into the request headers by hand: something else in the request
chain brings Basic credentials, and `requests` lets an auth replace the header."""

from __future__ import annotations

from urllib.parse import urlsplit

from sandbox.host.credentials import write_private
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom

HEADER_DAG = "sandbox_repro_header_style"
NETRC = ".netrc"
# how the gateway takes Basic credentials where it expects a JWT
BASIC_REFUSED = Symptom("gateway", 403, "HTTP 403 Key not authorized (Basic credentials sent)",
                        "failed at gateway: HTTP 403")


class BasicAuthClobbersBearer(Scenario):
    name = "basic-auth-clobbers-bearer"
    dag = HEADER_DAG
    story = ("Someone filled in Login and Password on the connection in the UI \"for completeness\". The DAG sets "
             "`Authorization: Bearer …` itself, and from that run on the gateway never sees the token.")
    cause = ("the connection has a login: Airflow's HttpHook then authenticates with Basic (its default auth_type), "
             "which replaces the Authorization header the task set")
    fix = ("clear login and password on the connection (`sandbox apply` does), or pass auth_type=SandboxAuth "
           "instead of setting the header by hand")
    expected = BASIC_REFUSED
    doctor_says = "has a login"

    def inject(self, ctx: ScenarioContext) -> None:
        api = ctx.clients.airflow
        live = api.call("GET", f"/connections/{self.connection}").json()
        api.call("PATCH", f"/connections/{self.connection}",
                 json={**live, "login": "airflow", "password": "from-the-ui-form"})


class NetrcOverride(Scenario):
    name = "netrc-override"
    dag = HEADER_DAG
    story = ("The same DAG passes on every worker but one. That worker's user once ran a tool that wrote a "
             "~/.netrc entry for the gateway's host.")
    cause = ("requests reads ~/.netrc when a request has no auth of its own, and the entry's Basic credentials "
             "replace the Authorization header the task set")
    fix = ("remove the host's entry from the worker's ~/.netrc (`sandbox repro revert` does here), or give the "
           "hook auth_type=SandboxAuth, which netrc cannot override")
    expected = BASIC_REFUSED
    doctor_says = "~/.netrc"
    differs = ("tasks_home.netrc",)

    def inject(self, ctx: ScenarioContext) -> None:
        host = urlsplit(ctx.routes()[self.connection]["url"]).hostname
        write_private(ctx.handoff.home / NETRC, f"machine {host}\n  login deploy\n  password left-over-from-a-tool\n")

    def revert(self, ctx: ScenarioContext) -> None:
        (ctx.handoff.home / NETRC).unlink(missing_ok=True)
