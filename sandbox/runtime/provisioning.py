"""Provision several components at once into the per-user cache, each failure reported, none lost."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import provision
from sandbox.errors import SandboxError
from sandbox.runtime.base import Progress, ProvisionResult
from sandbox.runtime.components.base import Component


def provision_all(components: list[Component], cache: Path, progress: Progress) -> list[ProvisionResult]:
    def one(comp: Component) -> ProvisionResult:
        name = comp.name
        t0 = time.monotonic()
        if comp.provisioned(cache):
            return ProvisionResult(name, True, "cached", 0.0)
        progress(name, "provisioning")
        try:
            comp.provision(cache, lambda msg: progress(name, msg))
        except Exception as e:  # noqa: BLE001 - report it per component; the others go on
            progress(name, "failed")
            why = str(e) if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
            return ProvisionResult(name, False, "failed", time.monotonic() - t0, why)
        progress(name, f"provisioned in {time.monotonic() - t0:.0f}s")
        return ProvisionResult(name, True, "provisioned", time.monotonic() - t0)

    pool = ThreadPoolExecutor(max_workers=max(len(components), 1))
    try:
        return list(pool.map(one, components))
    except KeyboardInterrupt:  # the builds run in threads: stop their processes, or Ctrl-C waits for them
        provision.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
