"""Shared by unit and integration tests."""

import os

pytest_plugins = ["pytester"]  # the plugin tests run user-like pytest sessions

# The suite runs on the local runtime; tests of the docker runtime ask for it by name. Without this, a machine
# whose Docker engine answers would start every test's sandbox in containers.
os.environ.setdefault("SANDBOX_RUNTIME", "local")
