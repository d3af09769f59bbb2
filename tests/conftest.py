"""Shared by unit and integration tests."""

pytest_plugins = ["pytester"]  # the plugin tests run user-like pytest sessions
