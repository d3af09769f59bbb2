"""Start components in parallel, each once the components it comes after are up.

Kept apart from the runtime so the ordering rules are plain code with an injected `start`, testable
without processes: a component waits for its dependencies; if one of them failed, it is not started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sandbox.errors import SandboxError


def start_in_order(names: list[str], after: dict[str, tuple[str, ...]], start: Callable[[str], None]) -> dict[str, str]:
    """Run `start(name)` for every name, each in its own thread; returns {name: why it failed}.

    `start` raises on failure; any exception counts, so no failure is lost.
    """
    done = {n: threading.Event() for n in names}
    failed: dict[str, str] = {}

    def one(name: str) -> None:
        try:
            for dep in after.get(name, ()):
                if dep not in done:
                    continue  # not part of this start (already running, or left out)
                done[dep].wait()
                if dep in failed:
                    raise SandboxError(f"not started: {dep} is not healthy.")
            start(name)
        except Exception as e:  # noqa: BLE001 - reported per component, never lost
            failed[name] = str(e) if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
        finally:
            done[name].set()

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed
