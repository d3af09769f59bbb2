"""Registers the task pods' policy listener: a task whose pod lost what the sandbox keeps from tasks says so in
its own log."""

import sandbox_pod_policy
from airflow.plugins_manager import AirflowPlugin


class SandboxPodPolicy(AirflowPlugin):
    name = "sandbox_pod_policy"
    listeners = [sandbox_pod_policy]
