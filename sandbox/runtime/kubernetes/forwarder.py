"""The kubernetes runtime's way to 127.0.0.1: one `kubectl port-forward` per Service, kept alive; and one per pod
of a replicated unit (the gateway), each on a port of its own, written to `replicas.json` in the working folder.

A forward ends with the pod it reached (a restart, a rollout, a pod not ready yet): each is started again a
moment later, resolving the Service's pod anew. The replicated units' pods are looked up every few seconds; a
replica is listed once its forward answers. This process is spawned with the sandbox's mark, so `down` finds it as
it finds any process of the sandbox; TERM ends it and its forwards.

    python -m sandbox.runtime.kubernetes.forwarder --namespace NS [--context CTX] [--pods NAME=SELECTOR:PORT] \
        SERVICE:HOST_PORT:PORT[,HOST_PORT:PORT] ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

FIRST_RETRY_S, MAX_RETRY_S = 0.25, 2.0  # a forward that keeps failing (its Service has no pod yet) waits longer
LIVED_S = 5.0  # a forward that lived this long failed for a new reason: retried at once
PODS_EVERY_S = 3.0
REPLICAS_FILE = "replicas.json"
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


def kubectl_cmd(kubectl: str, context: str, namespace: str, *args: str) -> list[str]:
    return [kubectl, *(["--context", context] if context else []), "-n", namespace, *args]


def command(kubectl: str, context: str, namespace: str, target: str, pairs: list[str]) -> list[str]:
    """`target`: svc/NAME or pod/NAME."""
    return kubectl_cmd(kubectl, context, namespace, "port-forward", "--address", "127.0.0.1", target, *pairs)


def ready_pods(items: list[dict]) -> list[str]:
    """Names of the pods that run and are ready, in name order."""
    return sorted(p["metadata"]["name"] for p in items
                  if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
                  and any(c.get("type") == "Ready" and c.get("status") == "True"
                          for c in p["status"].get("conditions") or []))


class PodForwards:
    """Each ready pod of one selector on a port of its own."""

    def __init__(self, cluster: tuple[str, str, str], name: str, selector: str, port: int):
        """`cluster`: kubectl, context, namespace."""
        self.cluster, self.name, self.selector, self.port = cluster, name, selector, port
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def refresh(self) -> None:
        done = subprocess.run(kubectl_cmd(*self.cluster, "get", "pods", "-l", self.selector, "-o", "json"),
                              capture_output=True, text=True)
        if done.returncode != 0:
            return
        pods = set(ready_pods(json.loads(done.stdout)["items"]))
        for pod in list(self.procs):
            if pod not in pods or self.procs[pod].poll() is not None:
                self.procs.pop(pod).terminate()
                self.ports.pop(pod, None)
        for pod in pods - set(self.procs):
            proc = subprocess.Popen(command(*self.cluster, f"pod/{pod}", [f":{self.port}"]),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
            self.procs[pod] = proc
            threading.Thread(target=self._read, args=(pod, proc), daemon=True).start()

    def _read(self, pod: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(line.rstrip(), flush=True)
            if m := _FORWARDING.search(line):
                self.ports[pod] = int(m.group(1))

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()


def _write_replicas(groups: list[PodForwards]) -> None:
    text = json.dumps({g.name: dict(sorted(g.ports.items())) for g in groups}, sort_keys=True)
    path = Path(REPLICAS_FILE)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--context", default="")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--pods", action="append", default=[], help="NAME=SELECTOR:PORT")
    ap.add_argument("forwards", nargs="*")
    args = ap.parse_args(argv)
    wanted = {f.split(":", 1)[0]: f.split(":", 1)[1].split(",") for f in args.forwards}
    cluster = (args.kubectl, args.context, args.namespace)
    groups = []
    for spec in args.pods:
        name, _, rest = spec.partition("=")
        selector, _, port = rest.rpartition(":")
        groups.append(PodForwards(cluster, name, selector, int(port)))
    running: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    retry_at: dict[str, float] = {}
    backoff: dict[str, float] = dict.fromkeys(wanted, FIRST_RETRY_S)

    def stop(*_):
        for p in running.values():
            p.terminate()
        for g in groups:
            g.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pods_at = 0.0
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
                    command(*cluster, f"svc/{service}", pairs),
                    stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=sys.stderr, env=os.environ)
        if groups and now >= pods_at:
            pods_at = now + PODS_EVERY_S
            for g in groups:
                g.refresh()
        if groups:
            _write_replicas(groups)
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
