"""A stack started (or found running) and seeded from the spec: the one path `sandbox up` and the pytest plugin
share, so a stack the CLI brings up and one a test session brings up are the same stack."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from sandbox import reconcile
from sandbox.commands import rotation
from sandbox.reconcile import Report
from sandbox.runtime.base import ComponentStatus, Endpoints, Progress, Runtime, UpResult
from sandbox.spec import Spec
from sandbox.systems.steps import Change


@dataclass
class Started:
    results: list[UpResult]  # what `up` did per component ([] when it was found running)
    rows: list[ComponentStatus]
    endpoints: Endpoints
    report: Report | None  # apply's, unless no spec was given


def first_use(urls: list[str], timeout: float = 120.0) -> None:
    """GET each URL from a daemon thread, the answers ignored: the server's work happens whether or not anyone waits
    for it (nor does `up`: whoever next needs it finds it done, or waits less)."""
    def get() -> None:
        for url in urls:
            try:
                requests.get(url, timeout=timeout)
            except requests.RequestException:
                pass  # a server that cannot answer now says so at its real first use

    if urls:
        threading.Thread(target=get, name="first-use", daemon=True).start()


def start_and_seed(rt: Runtime, spec: Spec | None, without: list[str], ports: dict[str, int], progress: Progress,
                   running: list[ComponentStatus] | None = None) -> Started:
    """`rt.up`, then apply `spec` to what answers; `running`: the status of a stack found running (not started)."""
    if spec is not None and running is None:  # Airflow reads its realm as it starts: the spec's, not a restart later
        reconcile.before_start(spec, rt.paths)
    results = [] if running is not None else rt.up(without, ports, progress)
    rows = running if running is not None else rt.status()
    endpoints = rt.endpoints(rows)
    report = None
    if spec is not None:
        # the sandbox's page runs with a seeded stack (a bare `up --no-apply` starts only the components); it reads
        # nothing apply writes as it starts, so its process starts beside apply rather than after it
        from sandbox.stack import page as lifecycle

        def page() -> tuple[str, float]:
            t0 = time.monotonic()
            return lifecycle.ensure(rt.paths, spec.source, progress), time.monotonic() - t0

        if running is None:  # just started: what its components build on first use, built while apply runs
            first_use(rt.first_use_urls(endpoints))
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = pool.submit(page)
            progress("apply", f"seeding from {spec.source}")
            report = reconcile.apply(spec, endpoints, rt.paths)
            # a rotation killed half-way (its note in the home) is finished now that apply wrote the current secrets
            report.changes += [Change("keycloak", "update", "rotation", "interrupted", line)
                               for line in rotation.settle(spec, endpoints, rt.paths, progress)]
            action, secs = started.result()
        if running is None:
            results = [*results, UpResult("ui", action, round(secs, 2))]
    return Started(results, rows, endpoints, report)
