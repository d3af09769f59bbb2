"""What the page shows, kept live: the components, the trust map with each connection's latest verdict, doctor's
verdicts, the scenario catalogue — and the one job a person started from the page (a smoke, a scenario reproduced
and kept, its revert), with its progress lines.

While somebody looks (a page's event stream, an API client, a job), a background thread refreshes the parts at
their own cadence: the smoke verdicts file every 0.25 s (a verdict reaches the page within a second), the components
every 2 s, the live evidence (drift, secret ages, audit) every 15 s and after each job. Every change bumps `version`;
the server streams the snapshot to the page when it does. Nobody looking for LINGER seconds, it stops refreshing: a
page left running beside the stack took a tenth of a core (and called every system's API) for no reader.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from sandbox.commands import map_render, smoke, trust_map
from sandbox.paths import SandboxPaths
from sandbox.scenarios import repro
from sandbox.scenarios.base import ScenarioContext
from sandbox.scenarios.inbound import InboundScenario, Told
from sandbox.spec import Spec, chosen
from sandbox.spec import load as load_spec
from sandbox.stack.factory import make_runtime

COMPONENTS_EVERY, EVIDENCE_EVERY, VERDICTS_EVERY = 2.0, 15.0, 0.25
LINGER = 30.0  # seconds the refreshes go on after the last look (an event stream looks at least every 10 s)
TOUR = [  # in the order data flows: what each part is, for a new engineer's first visit
    ("components", "The stack", "Six systems run here: Airflow runs the DAGs; the vault (OpenBao) keeps every client "
                                "secret; Keycloak issues tokens; the Tyk gateway checks them against policies; Redis "
                                "keeps the gateway's counters; the upstream is the service behind it."),
    ("map", "The trust map", "Each path is a trust edge, left to right as a call travels: a DAG uses a connection, "
                             "which acts as a service account (a Keycloak client) whose scopes a gateway policy "
                             "allows, on an API in front of an upstream. Green: the last smoke passed; red: it "
                             "failed; orange: the live systems differ from the spec. Click a path for its detail."),
    ("connections", "Connections", "Airflow's connections, each with its latest smoke and doctor's verdict: the "
                                   "first broken hop and its fix. A DAG names the connection and nothing else; the "
                                   "token travels with it."),
    ("scenarios", "The scenario catalogue", "Credential bugs teams meet, each with its story, symptom, cause and "
                                            "fix. Reproduce one to see its symptom on its edge, then revert it."),
    ("compare", "Compare with another machine", "Works here, breaks there? Drop the other machine's snapshot "
                                                "(`sandbox snapshot FILE`): what differs, hop by hop, and the "
                                                "difference that explains a broken connection, with its fix."),
    ("job", "Progress", "What you start here (a smoke, a scenario, a revert) streams its progress here."),
]


def _dumps(data) -> str:
    return json.dumps(data, sort_keys=True, default=str)


class Hub:
    def __init__(self, paths: SandboxPaths, spec_path: Path | None):
        self.paths, self.spec_path = paths, spec_path
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.parts: dict[str, object] = {"job": None, "doctor": {}, "repro": {}}
        self.evidence: trust_map.Evidence | None = None
        self.evidence_at = ""
        self.verdicts: dict[str, dict] = {}
        self._json = ""
        self._wake = threading.Event()
        self._job_thread: threading.Thread | None = None
        self.wanted_until = 0.0  # monotonic: refresh while now is before it
        self.refreshes = 0  # a look after a pause waits for the next one

    # ---- what the page gets --------------------------------------------------------------------------
    def spec(self) -> Spec:
        # the spec it was started with, else the one the sandbox runs (`up --spec` recorded it)
        return load_spec(chosen(self.paths.spec_record, self.spec_path).path)

    def runtime(self):
        return make_runtime(self.paths)

    def snapshot(self) -> tuple[int, str]:
        with self.lock:
            return self.version, self._json

    def _set(self, **parts) -> None:
        with self.lock:
            self.parts.update(parts)
            text = _dumps(self.parts)
            if text != self._json:
                self._json, self.version = text, self.version + 1
                self.changed.notify_all()

    def want(self) -> bool:
        """Somebody looks: refreshes go on for LINGER seconds. True when they had paused (the snapshot may be old)."""
        with self.lock:
            paused = time.monotonic() >= self.wanted_until
            self.wanted_until = time.monotonic() + LINGER
        if paused:
            self._wake.set()
        return paused

    def wanted(self) -> bool:
        return time.monotonic() < self.wanted_until or self.busy()

    def look(self, timeout: float) -> tuple[int, str]:
        """The snapshot for one reader; after a pause, the one the next refresh makes (within `timeout`)."""
        with self.lock:
            done = self.refreshes
        if self.want():
            with self.lock:
                self.changed.wait_for(lambda: self.refreshes != done, timeout=timeout)
        return self.snapshot()

    def wait_change(self, seen: int, timeout: float) -> tuple[int, str]:
        """The next snapshot after version `seen` (an event stream's wait); a current one after a pause."""
        until = time.monotonic() + timeout
        self.look(timeout)
        with self.lock:
            self.changed.wait_for(lambda: self.version != seen, timeout=max(0.0, until - time.monotonic()))
            return self.version, self._json

    # ---- the parts ------------------------------------------------------------------------------------
    def _components(self, rt) -> list[dict]:
        from sandbox.stack import page as lifecycle

        rows = rt.status() + [lifecycle.status_row(self.paths, rt.name)]
        return [{"name": r.name, "state": r.state, "healthy": r.healthy, "detail": r.detail, "url": r.url,
                 "urls": r.urls, "username": r.username,
                 "has_secret": bool(r.secret) and not r.secret_elsewhere, "secret_elsewhere": r.secret_elsewhere,
                 "runtime": r.runtime}
                for r in rows]

    def _map(self, spec: Spec, rt) -> dict:
        endpoints = rt.endpoints()
        m = trust_map.assemble(spec, endpoints, self.evidence or trust_map.Evidence(), self.verdicts)
        m.generated_at = self.evidence_at  # the evidence's time, not this look's: an unchanged map is the same map
        still = set(repro.kept_at(self.paths).values())  # reverted elsewhere (the CLI): no longer shown
        kept = {c: v for c, v in (self.parts.get("repro") or {}).items() if c in still}
        for e in m.edges:  # a kept scenario's symptom is the edge's latest evidence until it is reverted
            if e.connection in kept:
                e.smoke = f"failed at {kept[e.connection]['symptom']}"
                e.smoke_at = kept[e.connection]["at"]
        return {"edges": [e.as_dict() for e in m.edges], "checked": m.checked, "svg": map_render.svg(m)}

    def _scenarios(self, spec: Spec, runtime: str) -> list[dict]:
        kept = repro.kept_at(self.paths)
        out = []
        for sc in repro.listed(spec):
            out.append({"name": sc.name, "connection": sc.connection, "story": sc.story, "cause": sc.cause,
                        "fix": sc.fix, "symptom": asdict(sc.expected), "runnable": runtime in sc.runtimes,
                        "needs": sc.needs, "kept": sc.name in kept})
        return out

    def refresh(self, evidence: bool = False) -> None:
        spec, rt = self.spec(), self.runtime()
        if evidence or self.evidence is None:
            self.evidence = trust_map.evidence(spec, rt.endpoints(), self.paths)
            self.evidence_at = trust_map._iso(time.time())
        self.verdicts = smoke.verdicts_of(self.paths)
        self._set(sandbox={"home": str(self.paths.home), "runtime": rt.name, "spec": str(spec.source)},
                  components=self._components(rt), map=self._map(spec, rt),
                  scenarios=self._scenarios(spec, rt.name), tour=TOUR)

    def loop(self) -> None:
        last = {"components": 0.0, "evidence": 0.0}
        mtime = None
        while True:
            now = time.monotonic()
            if not self.wanted():  # nobody looks: sleep until somebody does (`want` wakes this)
                self._wake.wait(LINGER)
                self._wake.clear()
                continue
            answered = False  # a refresh made, or its error: a look waiting after a pause has its answer
            try:
                seen = self.paths.smoke_verdicts.stat().st_mtime if self.paths.smoke_verdicts.exists() else None
                if (now - last["components"] >= COMPONENTS_EVERY or seen != mtime
                        or now - last["evidence"] >= EVIDENCE_EVERY):
                    full = now - last["evidence"] >= EVIDENCE_EVERY
                    self.refresh(evidence=full)
                    answered = True
                    mtime, last["components"] = seen, now
                    if full:
                        last["evidence"] = now
            except Exception as e:  # noqa: BLE001 - the page shows it; the loop goes on
                answered = True
                self._set(error=f"{type(e).__name__}: {e}")
            if answered:
                with self.lock:
                    self.refreshes += 1
                    self.changed.notify_all()
            self._wake.wait(VERDICTS_EVERY)
            self._wake.clear()

    # ---- jobs -----------------------------------------------------------------------------------------
    def busy(self) -> bool:
        job = self.parts.get("job")
        return bool(job) and job["state"] == "running"

    def start(self, kind: str, name: str, work: Callable[[Callable[[str], None]], dict]) -> dict:
        """Run one job in the background (refused while one runs); its lines and result go into the snapshot."""
        with self.lock:
            if self.busy():
                return {"refused": f"{self.parts['job']['kind']} {self.parts['job']['name']} is still running"}
            job = {"kind": kind, "name": name, "state": "running", "lines": [], "result": None,
                   "started": time.time()}
            self.parts["job"] = job

        def say(line: str) -> None:
            with self.lock:
                job["lines"] = [*job["lines"], f"{time.time() - job['started']:5.1f}s  {line}"][-200:]
            self._set(job=copy.deepcopy(job))

        def run() -> None:
            try:
                result = work(say)
                state = "done" if result.get("ok", True) else "failed"
            except Exception as e:  # noqa: BLE001 - a job's failure is shown on the page, in one sentence
                result = {"ok": False, "error": getattr(e, "message", None) or f"{type(e).__name__}: {e}",
                          "fix": getattr(e, "fix", "")}
                if not hasattr(e, "message"):
                    say(traceback.format_exc().strip().splitlines()[-1])
                state = "failed"
            try:  # the evidence the job changed (drift, verdicts) is on the page by the time it says done
                self.refresh(evidence=True)
            except Exception:  # noqa: BLE001 - the loop's next look shows why
                pass
            with self.lock:
                job.update(state=state, result=result, seconds=round(time.time() - job["started"], 1))
            self._set(job=copy.deepcopy(job))
            self._wake.set()

        self._set(job=copy.deepcopy(job))
        self._job_thread = threading.Thread(target=run, daemon=True)
        self._job_thread.start()
        return {"started": f"{kind} {name}".strip()}

    def _ctx(self):
        return ScenarioContext.of(self.spec(), self.runtime())

    def do_smoke(self, say) -> dict:
        spec, rt = self.spec(), self.runtime()
        say("a real DAG run per environment, every connection through the gateway")
        report = smoke.run(spec, rt.endpoints(), self.paths)
        for r in report.rows:
            say(f"{'✓' if r.ok else '✗'} {r.connection}" + ("" if r.ok else f": {r.verdict}"))
        return {"ok": report.ok, "seconds": report.seconds}

    def do_repro(self, name: str, say) -> dict:
        ctx = self._ctx()
        progress = lambda who, msg: say(msg)  # noqa: E731
        repro.prepare(ctx, progress)
        r = repro.run(name, ctx, keep=True, progress=progress)
        seen = r.observed
        symptom = f"{seen.hop}: {seen.words}" if seen else "no symptom"
        with self.lock:
            self.parts["repro"] = {**(self.parts.get("repro") or {}),
                                   r.connection: {"scenario": name, "symptom": symptom,
                                                  "at": trust_map._iso(time.time())}}
        say(f"{'✓ matched' if r.matched else '✗ did not match'}: {r.connection} {symptom}")
        sc = repro.scenario(name).on(ctx.spec, r.connection)
        self._doctor(ctx, r.connection, say, sc.told(ctx.paths) if isinstance(sc, InboundScenario) else None)
        return {"ok": r.matched, "connection": r.connection, "symptom": symptom, "expected": asdict(r.expected)}

    def do_revert(self, say) -> dict:
        ctx = self._ctx()
        say("taking the kept fault out, then `sandbox apply`")
        kept = repro.revert_kept(ctx)
        with self.lock:
            self.parts["repro"] = {}
        rows = repro.prove_reverted(ctx, kept, say)
        for row in rows:
            say(f"{'✓' if row.ok else '✗'} {row.connection}" + ("" if row.ok else f": {row.verdict}"))
            self._doctor(ctx, row.connection, say)
        return {"ok": all(r.ok for r in rows), "reverted": sorted(kept)}

    def do_compare(self, other: dict, say) -> dict:
        """A snapshot another machine wrote (A) against this sandbox now (B)."""
        from sandbox.commands import compare, snapshot
        from sandbox.scenarios import known_differences

        spec = self.spec()
        say(f"A: the dropped snapshot ({other.get('machine', {}).get('runtime')} runtime, taken {other.get('taken')}); "
            "B: this sandbox, a snapshot now")
        c = compare.compare(other, snapshot.of_runtime(spec, self.runtime()), known_differences(spec))
        for d in c.differences[:40]:
            say(f"{d.hop}: {d.path}: A {d.a!r} / B {d.b!r}")
        if len(c.differences) > 40:
            say(f"… and {len(c.differences) - 40} more (`sandbox compare FILE` lists them all)")
        for side, conn, why in c.failures():
            say(f"✗ {why.sentence}" if why else f"✗ {side}'s {conn} fails; no difference the catalogue knows "
                                               "explains it")
        say("no difference" if c.equal else f"{len(c.differences)} differences")
        return {"ok": not c.explained, "equal": c.equal, "explained": [x.scenario for x in c.explained]}

    def do_doctor(self, say) -> dict:
        ctx = self._ctx()
        return {"ok": self._doctor(ctx, None, say)}

    def _doctor(self, ctx, connection: str | None, say, told: Told | None = None) -> bool:
        from sandbox.commands import doctor

        if connection and ctx.spec.inbound_grant(connection):  # a caller into Airflow (an inbound scenario's)
            from sandbox.commands import doctor_caller

            say(f"doctor --caller {connection}")
            told = told or Told()  # what a kept scenario tells of the caller's own call
            found = [doctor_caller.diagnose(ctx.spec, ctx.endpoints, ctx.paths, connection, told.read_held(),
                                            told.said)]
        else:
            say(f"doctor{' --connection ' + connection if connection else ''}")
            found = doctor.run(ctx.spec, ctx.endpoints, ctx.handoff, None, connection)
        verdicts = dict(self.parts.get("doctor") or {})
        for d in found:
            verdicts[d.connection] = {"ok": d.ok, "verdict": d.verdict, "at": trust_map._iso(time.time()),
                                      "hops": [asdict(h) for h in d.hops]}
            say(f"{'✓' if d.ok else '✗'} doctor {d.connection}" + ("" if d.ok else f": {d.verdict}"))
        self._set(doctor=verdicts)
        return all(d.ok for d in found)

