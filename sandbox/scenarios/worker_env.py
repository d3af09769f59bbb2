"""Bugs of one machine's environment: a variable only one Airflow worker (here: the scheduler's LocalExecutor
workers) carries, or a clock only one server has. Injected by restarting that process with the difference."""

from __future__ import annotations

import glob
import json

from sandbox.errors import SandboxError
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.airflow.doctor import env_var_name

WORKERS = ("airflow", "airflow-scheduler")  # the LocalExecutor's workers are forked by the scheduler
IDP = ("keycloak", "keycloak")
SKEW = "+5m"  # Keycloak's clock ahead of everyone else's
FAKETIME_LIB = "/usr/lib/*/faketime/libfaketime.so.1"  # Debian's libfaketime


class EnvShadowedConnection(Scenario):
    name = "env-shadowed-connection"
    story = ("The UI shows the connection pointing at the gateway's orders route, and a test from the UI passes. "
             "Tasks still call the legacy route: the workers' environment defines the same connection id.")
    fix = "unset the variable where the workers run and restart them (`sandbox repro revert` does here)"
    expected = Symptom("connection", None, "-v1", "failed at connection: host is")  # the legacy route: <route>-v1
    differs = ("connections.*.defined_in",)

    @property
    def cause(self) -> str:  # type: ignore[override]
        return (f"an {env_var_name(self.connection or 'ID')} variable in the workers' environment wins over the "
                "metastore, so tasks use a connection nobody sees in the UI")

    @property
    def doctor_says(self) -> str:  # type: ignore[override]
        return f"shadowed by the environment variable {env_var_name(self.connection)}"

    def inject(self, ctx: ScenarioContext) -> None:
        legacy = ctx.routes()[self.connection]["url"] + "-v1"
        ctx.runtime.restart(*WORKERS, {env_var_name(self.connection): json.dumps(
            {"conn_type": "http", "host": legacy, "description": "set in the worker image in 2023"})})

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*WORKERS, {})


class ProxyEnv(Scenario):
    name = "proxy-env"
    story = ("One worker was rebuilt from the corporate base image: it sets HTTP_PROXY and HTTPS_PROXY, and a "
             "NO_PROXY that lists the Airflow API server (so tasks start) but not the vault, the IdP or the gateway. "
             "Tasks scheduled there fail before they have a token; on the other workers they pass.")
    cause = ("requests sends the task's calls through the proxy named in HTTP(S)_PROXY, because NO_PROXY does not "
             "list the vault's, the IdP's and the gateway's hosts")
    fix = ("add the vault's, the IdP's and the gateway's hosts to NO_PROXY on every worker (or unset the proxy) and "
           "restart them")
    expected = Symptom("token", None, "unreachable: ProxyError", "failed at token")
    doctor_says = "HTTP_PROXY"
    differs = ("processes.*.proxied.*",)

    def inject(self, ctx: ScenarioContext) -> None:
        proxy = "http://127.0.0.1:1"  # nothing listens on port 1: the proxy refuses, at once and every time
        airflow_api = ctx.endpoints.inner("airflow").split("://", 1)[1]  # tasks report to it: it must stay direct
        ctx.runtime.restart(*WORKERS, {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy,
                                       "NO_PROXY": f"localhost,{airflow_api}"})

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*WORKERS, {})


def faketime_library() -> str:
    found = sorted(glob.glob(FAKETIME_LIB))
    if not found:
        raise SandboxError("clock-skew runs Keycloak under libfaketime, which is not installed.",
                           "apt-get install libfaketime (Debian/Ubuntu).")
    return found[0]


class ClockSkew(Scenario):
    name = "clock-skew"
    story = ("The IdP's host lost its NTP sync and runs five minutes ahead. Its tokens are valid, correctly signed "
             "and carry the right claims, yet the gateway refuses every one of them.")
    cause = ("the token's `iat` (issued at) lies in the gateway's future: the IdP's clock is ahead, and the gateway "
             "allows no skew by default")
    fix = "sync the clocks (NTP) on the IdP and the gateway; or allow some skew on the API (issuedAtValidationSkew)"
    expected = Symptom("gateway", 401, "HTTP 401 Key not authorized: token used before issued",
                       "failed at gateway: HTTP 401")
    doctor_says = "in the future"
    differs = ("idp.*.clock_offset_s",)
    runtimes = ("local",)
    needs = ("the local runtime: Keycloak runs under Debian's libfaketime there; the official Keycloak image has no "
             "libfaketime, and a container's clock is the host's")

    def inject(self, ctx: ScenarioContext) -> None:
        # The JVM keeps its monotonic clock (faking it stalls its timers); only the wall clock is ahead. With the
        # monotonic clock real, libfaketime's "monotonic fix" (its bookkeeping of every timed wait) has nothing to
        # fix, and off it Keycloak starts in seconds rather than 10x the CPU (measured: 15.7 CPU-s against 150).
        ctx.runtime.restart(*IDP, {"LD_PRELOAD": faketime_library(), "FAKETIME": SKEW,
                                   "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_FORCE_MONOTONIC_FIX": "0"})

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*IDP, {})
