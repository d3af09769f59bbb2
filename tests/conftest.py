"""Shared by unit and integration tests."""

import os
import signal

pytest_plugins = ["pytester"]  # the plugin tests run user-like pytest sessions

# The suite runs on the local runtime; tests of the docker runtime ask for it by name. Without this, a machine
# whose Docker engine answers would start every test's sandbox in containers.
os.environ.setdefault("SANDBOX_RUNTIME", "local")

# The Ctrl-C tests need a tree that Ctrl-C reaches. Started as a background job of a non-interactive shell, pytest and
# every child inherit SIGINT ignored (the children never stop: exit 0, not 130); a handler here is reset to the
# default at each child's exec, as a terminal would start them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The session's stack runs on test ports, beside a developer's own sandbox. Set here, in the conftest pytest loads
# before it configures, because the plugin reads the environment once, early (its report header): set in
# tests/integration/conftest.py it came too late, and a fresh home started on the default ports.
# SANDBOX_TEST_PORT_OFFSET moves them: CI runs the scenarios in a second pytest process with a stack of its own
# (`--sandbox-home` elsewhere, ports +900), beside the rest of the suite.
_OFFSET = int(os.environ.get("SANDBOX_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {k: v + _OFFSET for k, v in {"keycloak": 29081, "keycloak-management": 29091, "redis": 29379, "tyk": 29082,
                                          "airflow": 29080, "upstream": 29083, "openbao": 29200, "ui": 29090}.items()}
os.environ["SANDBOX_PORTS"] = ",".join(f"{k}={v}" for k, v in TEST_PORTS.items())
