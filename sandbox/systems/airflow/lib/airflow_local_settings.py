"""Airflow's local settings for every process of the sandbox: the task pods' policy (kubernetes runtime)."""

from sandbox_pod_policy import pod_mutation_hook  # noqa: F401  (Airflow looks the name up here)
