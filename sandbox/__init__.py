"""airflow-tyk-sandbox: Airflow, Tyk, Redis and Keycloak on one machine, wired from one spec."""

__version__ = "0.1.0"
