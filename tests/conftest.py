"""Shared by unit and integration tests."""

import os

pytest_plugins = ["pytester"]  # the plugin tests run user-like pytest sessions

# The suite runs on the local runtime; tests of the docker runtime ask for it by name. Without this, a machine
# whose Docker engine answers would start every test's sandbox in containers.
os.environ.setdefault("SANDBOX_RUNTIME", "local")

# The session's stack runs on test ports, beside a developer's own sandbox. Set here, in the conftest pytest loads
# before it configures, because the plugin reads the environment once, early (its report header): set in
# tests/integration/conftest.py it came too late, and a fresh home started on the default ports.
TEST_PORTS = {"keycloak": 29081, "keycloak-management": 29091, "redis": 29379, "tyk": 29082,
              "airflow": 29080, "upstream": 29083, "openbao": 29200, "ui": 29090}
os.environ["SANDBOX_PORTS"] = ",".join(f"{k}={v}" for k, v in TEST_PORTS.items())
