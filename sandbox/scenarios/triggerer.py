"""Bugs of deferred calls, made by the triggerer instead of a worker: a per-operator auth the async hook drops
when the triggerer's connection carries no credential, and an auth class the triggerer cannot import."""

from __future__ import annotations

from sandbox.host.credentials import write_private
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.airflow import files as airflow_files

TEAM_AUTH_DAG = "sandbox_repro_team_auth"
TRIGGERER = ("airflow", "airflow-triggerer")
HTTP_TRIGGER = "airflow.providers.http.triggers.http.HttpTrigger"


class DeferrableDropsAuth(Scenario):
    name = "deferrable-drops-auth"
    dag = TEAM_AUTH_DAG
    story = ("A team's HttpOperator passes its own auth_type and has worked on the workers for a year. They set "
             "deferrable=True to free worker slots, and every call now reaches the gateway with no credential — "
             "the triggerer runs with a configuration of its own, without the secrets backend the workers have.")
    cause = ("the deferred call is made by the triggerer: its connection comes without the credential (no secrets "
             "backend there), and HttpAsyncHook applies an auth_type only when the connection has a login")
    fix = ("give the triggerer the workers' [workers] secrets_backend (`sandbox repro revert` restarts it with the "
           "sandbox's), so the credential travels with the connection; do not rely on auth_type in deferred calls")
    expected = Symptom("gateway", 401, "HTTP 401 Authorization field missing", "failed at gateway: HTTP 401")
    doctor_says = "triggerer does not load the sandbox's secrets backend"

    def inject(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*TRIGGERER, {airflow_files.BACKEND_SETTING: ""})  # "": no secrets backend of its own

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*TRIGGERER, {})


class TriggererImport(Scenario):
    name = "triggerer-import"
    dag = TEAM_AUTH_DAG
    story = ("A team moved its auth module next to its DAGs, \"where the code is\". The workers still import it and "
             "every sync task passes; the first deferred task after the triggerer's restart fails — and in a plain "
             "Airflow 3.3 the triggerer dies with it, and with it every deferred task of every team.")
    cause = (f"the triggerer imports the HttpTrigger's auth_type by its dotted path, and the DAG folder is not on "
             f"its path: {airflow_files.TEAM_AUTH} cannot be imported there")
    fix = ("keep what a trigger names (auth classes, triggers) in a module every Airflow process can import — an "
           "installed package, or the sandbox's lib folder (`sandbox apply` puts it back) — not in the DAG folder")
    expected = Symptom("task", None, "recorded nothing",
                       f"the triggerer could not build {HTTP_TRIGGER}: ModuleNotFoundError")
    doctor_says = f"{airflow_files.TEAM_AUTH} in the DAG folder"

    def inject(self, ctx: ScenarioContext) -> None:
        lib, dags = ctx.handoff.lib / airflow_files.TEAM_AUTH, ctx.handoff.dag_folder / airflow_files.TEAM_AUTH
        write_private(dags, lib.read_text())
        lib.unlink()
        # the deploy that moved it restarts the triggerer: a running one keeps what it imported before
        ctx.runtime.restart(*TRIGGERER, {})
