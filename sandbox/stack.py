"""A stack started (or found running) and seeded from the spec: the one path `sandbox up` and the pytest plugin
share, so a stack the CLI brings up and one a test session brings up are the same stack."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sandbox import reconcile
from sandbox.reconcile import Report
from sandbox.runtime.base import ComponentStatus, Endpoints, Progress, Runtime, UpResult
from sandbox.spec import Spec


@dataclass
class Started:
    results: list[UpResult]  # what `up` did per component ([] when it was found running)
    rows: list[ComponentStatus]
    endpoints: Endpoints
    report: Report | None  # apply's, unless no spec was given


def start_and_seed(rt: Runtime, spec: Spec | None, without: list[str], ports: dict[str, int], progress: Progress,
                   running: list[ComponentStatus] | None = None) -> Started:
    """`rt.up`, then apply `spec` to what answers; `running`: the status of a stack found running (not started)."""
    results = [] if running is not None else rt.up(without, ports, progress)
    rows = running if running is not None else rt.status()
    endpoints = rt.endpoints(rows)
    report = None
    if spec is not None:
        # the sandbox's page runs with a seeded stack (a bare `up --no-apply` starts only the components); it reads
        # nothing apply writes as it starts, so its process starts beside apply rather than after it
        from sandbox.ui import lifecycle

        def page() -> tuple[str, float]:
            t0 = time.monotonic()
            return lifecycle.ensure(rt.paths, spec.source, progress), time.monotonic() - t0

        with ThreadPoolExecutor(max_workers=1) as pool:
            started = pool.submit(page)
            progress("apply", f"seeding from {spec.source}")
            report = reconcile.apply(spec, endpoints, rt.paths)
            action, secs = started.result()
        if running is None:
            results = [*results, UpResult("ui", action, round(secs, 2))]
    return Started(results, rows, endpoints, report)
