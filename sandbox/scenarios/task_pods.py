"""Bugs only a cluster's executor shows: a task's pod is made from a template, not forked from the scheduler, so a
setting the scheduler has is not a setting the task has."""

from __future__ import annotations

from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.airflow.kube_executor import TASK_UNIT

TASK_PODS = ("airflow", TASK_UNIT)


class TaskPodMissingConfig(Scenario):
    name = "task-pod-missing-config"
    story = ("The platform team moved Airflow to the KubernetesExecutor. The scheduler's environment still names "
             "the secrets backend, `airflow config get-value workers secrets_backend` on it says so, and the "
             "connection test passes — but the pod template was written by hand from an old chart's values, and "
             "every task now finds its connection without a credential.")
    cause = (f"a task pod has the pod template's environment, not the scheduler's: the template lacks "
             f"{airflow_files.BACKEND_SETTING}, so the task's connection comes from the metastore without the "
             "credential the sandbox's secrets backend adds")
    fix = (f"set {airflow_files.BACKEND_SETTING} (and its kwargs) in the pod template the executor reads "
           "([kubernetes_executor] pod_template_file) — `sandbox repro revert` rewrites it from the scheduler's pod")
    expected = Symptom("token", None, "the connection carries no bearer token", "failed at token")
    doctor_says = "task pods do not load the sandbox's secrets backend"
    runtimes = ("kubernetes",)
    needs = ("the kubernetes runtime: elsewhere Airflow's workers are the scheduler's own processes, which inherit "
             "its environment; on a cluster each task runs in a pod made from a template")

    def inject(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*TASK_PODS, {airflow_files.BACKEND_SETTING: ""})  # "": no secrets backend in the pods

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*TASK_PODS, {})
