"""`sandbox repro`: reproduce a credential bug through a real DAG run, compare the symptom, take it out again.

Each run: the affected connection's smoke must be green first; the scenario injects its fault into the real
systems; the smoke DAG runs for that connection and its failing hop becomes the observed symptom; the fault is
reverted (its own revert, then `sandbox apply`) and the smoke must be green again. Ctrl-C at any point reverts.
`--keep` leaves the fault in place for a person (recorded in the home; `sandbox repro revert` takes it out).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sandbox.commands import smoke
from sandbox.errors import SandboxError, use_one_of
from sandbox.host.credentials import write_private
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Progress
from sandbox.scenarios import CATALOGUE
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom, connections_of
from sandbox.scenarios.inbound import InboundScenario, Probed
from sandbox.spec import Spec

KEPT_FILE = ".repro-kept.json"


@dataclass
class ReproResult:
    scenario: str
    connection: str
    story: str
    cause: str
    fix: str
    expected: Symptom
    observed: Symptom | None
    matched: bool
    kept: bool
    green_after: bool | None  # None when kept
    seconds: float

    @property
    def ok(self) -> bool:
        return self.matched and (self.kept or bool(self.green_after))


def scenario(name: str) -> Scenario:
    if name not in CATALOGUE:
        raise SandboxError(f"No scenario named {name!r}.", use_one_of(name, CATALOGUE), exit_code=2)
    return CATALOGUE[name]


def listed(spec: Spec) -> list[Scenario]:
    """The catalogue, each scenario with the connection it breaks in `spec` (or, where the spec has none for it,
    why not: the listing never fails on one scenario)."""
    out = []
    for sc in CATALOGUE.values():
        try:
            out.append(sc.on(spec))
        except SandboxError as e:
            unbound = copy.copy(sc)
            unbound.unbound_because = f"(none: {e.message.split(': ', 1)[-1]})"
            out.append(unbound)
    return out


def runnable(runtime: str) -> list[str]:
    """The catalogue's scenarios that can be reproduced on `runtime`."""
    return [n for n, s in CATALOGUE.items() if runtime in s.runtimes]


def observed(row: smoke.SmokeRow) -> Symptom | None:
    failed = next((h for h in row.hops if h["ok"] is False), None)
    if failed is not None:
        return Symptom(failed["name"], row.status, failed["detail"], " ".join(row.log))
    if not row.ok:  # the task failed before it made a call (or recorded one): its log says why
        return Symptom("task", None, row.verdict, " ".join(row.log))
    return None


def _probe(ctx: ScenarioContext, sc: Scenario, faulty: bool = False) -> Probed:
    """The scenario's probe: a caller's call into Airflow, or a DAG run for its connection."""
    if isinstance(sc, InboundScenario):
        return sc.probe(ctx, faulty)
    row = _smoke_one(ctx, sc)
    return Probed(row.ok, observed(row), row.verdict)


def _smoke_one(ctx: ScenarioContext, sc: Scenario) -> smoke.SmokeRow:
    """The scenario's DAG for its connection: the smoke, or the repro DAG written the way the bug needs."""
    conn = sc.target  # bound: its id, environment and service are all the DAG runs need
    if sc.dag:
        return smoke.probe_dag(ctx.endpoints, sc.dag, conn.conn_id, conn.env, conn.service)
    (row,) = smoke.run(ctx.spec, ctx.endpoints, ctx.paths, conn.env, conn.service).rows
    return row


def _revert(ctx: ScenarioContext, sc: Scenario) -> None:
    sc.revert(ctx)
    ctx.apply()


def prepare(ctx: ScenarioContext, progress: Progress = lambda *_: None) -> None:
    """Once before scenarios: no fault kept, and the spec applied (the DAG files the scenarios run included; each
    scenario's revert applies it again)."""
    if kept := kept_names(ctx):
        raise SandboxError(f"A fault is kept in place ({', '.join(kept)}); a scenario needs a clean sandbox.",
                           "`sandbox repro revert` takes it out.")
    progress("repro", "applying the spec")
    ctx.apply()


def run(name: str, ctx: ScenarioContext, keep: bool = False, progress: Progress = lambda *_: None) -> ReproResult:
    sc = scenario(name).on(ctx.spec)
    if ctx.runtime.name not in sc.runtimes:
        other = sc.runtimes[0]
        raise SandboxError(f"{name} needs {sc.needs}. This sandbox runs on the {ctx.runtime.name} runtime.",
                           f"run it in a sandbox on {other}: `sandbox down`, then `sandbox up --runtime {other}`.",
                           exit_code=2)
    t0 = time.monotonic()
    dag = "its call into Airflow" if isinstance(sc, InboundScenario) else sc.dag or "the smoke DAG"
    progress(name, f"baseline: {sc.connection} must be green through {dag}")
    baseline = _probe(ctx, sc)
    if not baseline.ok:
        raise SandboxError(f"{sc.connection} is not green before {name} ({baseline.verdict}).",
                           f"`sandbox doctor {' '.join(sc.doctor_args(ctx.paths)[:2])}` names why; `sandbox apply` "
                           "usually repairs it.")
    try:
        progress(name, "injecting the fault")
        sc.inject(ctx)
        ctx.endpoints.publish()  # what the fault wrote into Airflow's files, where its tasks read them
        progress(name, f"running {dag} for {sc.connection}")
        seen = _probe(ctx, sc, faulty=True).symptom
        if keep:
            _record_kept(ctx, name, sc.connection)
    except BaseException:  # Ctrl-C or a failure half-way: nothing stays broken
        progress(name, "reverting")
        _revert(ctx, sc)
        raise
    green = None
    if not keep:
        progress(name, "reverting")
        _revert(ctx, sc)
        progress(name, "checking it is green again")
        green = _probe(ctx, sc).ok
        sc.tidy(ctx)
    matched = seen is not None and sc.expected.matches(seen)
    return ReproResult(name, sc.connection, sc.story, sc.cause, sc.fix, sc.expected, seen, matched,
                       keep, green, round(time.monotonic() - t0, 2))


def _record_kept(ctx: ScenarioContext, name: str, connection: str) -> None:
    """Which fault is kept, and on which connection: a revert takes it out of that one, whatever spec it is given."""
    write_private(ctx.paths.home / KEPT_FILE, json.dumps({**_kept(ctx), name: connection}, sort_keys=True))


def _kept(ctx: ScenarioContext) -> dict[str, str | None]:
    return kept_at(ctx.paths)


def kept_at(paths: SandboxPaths) -> dict[str, str | None]:
    """The faults kept in place in the sandbox at `paths`: name -> the connection they were put into."""
    try:
        kept = json.loads((paths.home / KEPT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {n: None for n in kept} if isinstance(kept, list) else kept  # a list: names only, as kept before


def kept_names(ctx: ScenarioContext) -> list[str]:
    return sorted(_kept(ctx))


def revert_kept(ctx: ScenarioContext) -> dict[str, str | None]:
    """Take out every fault left in place with --keep; returns them: name -> the connection each was in."""
    kept = _kept(ctx)
    for name in sorted(kept):
        CATALOGUE[name].on(ctx.spec, kept[name]).revert(ctx)
    ctx.apply()
    (ctx.paths.home / KEPT_FILE).unlink(missing_ok=True)
    return kept


@dataclass(frozen=True)
class Proof:
    connection: str  # a connection, or a caller into Airflow
    ok: bool
    verdict: str


def prove_reverted(ctx: ScenarioContext, kept: dict[str, str | None], say: Callable[[str], None]) -> list[Proof]:
    """The smoke of each connection a reverted fault was in, so its verdict — which `status`, the map and the page
    show — is green again (or says why not) instead of the fault's until the next smoke; a caller's call into
    Airflow for each caller one was in."""
    rows, broken = [], set(kept.values())
    for name, caller in sorted(kept.items()):
        if caller and isinstance(sc := CATALOGUE[name], InboundScenario):
            say(f"{caller}'s call into Airflow")
            p = sc.on(ctx.spec, caller).probe(ctx)
            rows.append(Proof(caller, p.ok, p.verdict))
            broken.discard(caller)
    for c in (c for c in connections_of(ctx.spec) if c.conn_id in broken):
        say(f"smoke of {c.conn_id}")
        rows += [Proof(r.connection, r.ok, r.verdict)
                 for r in smoke.run(ctx.spec, ctx.endpoints, ctx.paths, c.env, c.service).rows
                 if r.connection == c.conn_id]
    return rows


def as_dict(r: ReproResult) -> dict:
    return {**asdict(r), "ok": r.ok}
