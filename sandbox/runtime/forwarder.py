"""The kubernetes runtime's way to 127.0.0.1: one `kubectl port-forward` per Service, kept alive.

A forward ends with the pod it reached (a restart, a rollout, a pod not ready yet): each is started again a
moment later, resolving the Service's pod anew. This process is spawned with the sandbox's mark, so `down` finds
it as it finds any process of the sandbox; TERM ends it and its forwards.

    python -m sandbox.runtime.forwarder --namespace NS [--context CTX] SERVICE:HOST_PORT:PORT[,HOST_PORT:PORT] ...
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

FIRST_RETRY_S, MAX_RETRY_S = 0.25, 2.0  # a forward that keeps failing (its Service has no pod yet) waits longer
LIVED_S = 5.0  # a forward that lived this long failed for a new reason: retried at once


def command(kubectl: str, context: str, namespace: str, service: str, pairs: list[str]) -> list[str]:
    ctx = ["--context", context] if context else []
    return [kubectl, *ctx, "-n", namespace, "port-forward", "--address", "127.0.0.1", f"svc/{service}", *pairs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--context", default="")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("forwards", nargs="+")
    args = ap.parse_args(argv)
    wanted = {f.split(":", 1)[0]: f.split(":", 1)[1].split(",") for f in args.forwards}
    running: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    retry_at: dict[str, float] = {}
    backoff: dict[str, float] = dict.fromkeys(wanted, FIRST_RETRY_S)

    def stop(*_):
        for p in running.values():
            p.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        now = time.monotonic()
        for service, pairs in wanted.items():
            p = running.get(service)
            if p is not None and p.poll() is not None:
                lived = now - started[service]
                backoff[service] = FIRST_RETRY_S if lived > LIVED_S else min(MAX_RETRY_S, backoff[service] * 2)
                retry_at[service] = now + backoff[service]
                running.pop(service)
            if service not in running and now >= retry_at.get(service, 0):
                started[service] = now
                running[service] = subprocess.Popen(
                    command(args.kubectl, args.context, args.namespace, service, pairs),
                    stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=sys.stderr, env=os.environ)
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
