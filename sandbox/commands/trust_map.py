"""`sandbox map`: the trust boundaries as edges — who may call what, with which credential, stored where, rotated
when — derived from the spec and checked against the live systems.

One edge per grant (an account's access to a service in an environment), plus one per Airflow connection that has
no grant (the gateway refuses it: that is an edge a reviewer must see too). `edges` is pure (the plan's objects in,
edges out); `mark` adds the evidence, also from plain data: the live systems' drift from the spec (what `sandbox
plan` would change), each secret's age, the last smoke's verdict per connection, and the DAGs the gateway's audit
records saw calling each route. `gather` reads that evidence from a running sandbox, each part on its own: a stopped
component leaves its part unchecked and says why, it never fails the map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sandbox.plan import AirflowConnection, Desired, TykApi, TykPolicy
from sandbox.spec import AIRFLOW_SERVICE, Spec
from sandbox.systems.openbao.client import MOUNT, SANDBOX_MOUNT
from sandbox.systems.steps import Change

UNITS = {1: "s", 60: "min", 3600: "hour", 86400: "day"}


def per(count: int, seconds: int) -> str:
    """100, 60 -> '100/min' (the spec's own way of writing a rate or quota)."""
    if count < 0:
        return "none"
    unit = UNITS.get(seconds)
    return f"{count}/{unit}" if unit else f"{count}/{seconds}s"


@dataclass
class Edge:
    env: str
    account: str
    service: str
    connection: str | None  # Airflow's connection on this route (the Airflow account's edges), else None
    client: str  # the Keycloak client (in the realm named like the environment)
    scopes: list[str]
    policy: str | None  # the gateway policy of the grant; None: no grant, the gateway refuses the token
    rate: str
    quota: str
    api: str
    route: str  # the gateway's listen path
    issuer: str
    audience: str
    jwks: str
    upstream: str
    token_lifespan_s: int
    secret_lives_in: list[str]
    secret_age_s: int | None = None
    smoke: str = "not run"  # ok | failed at <hop>: <detail> | not run (Airflow's edges only)
    smoke_at: str = ""
    dags: list[dict] = field(default_factory=list)  # {"dag", "calls", "last_seen"} from the audit records
    # into Airflow (a caller on Airflow's API route): the DAGs and assets its grant reaches; out of it: []
    reaches: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # what of the live systems departs from the spec on this edge

    @property
    def realm(self) -> str:
        return self.env

    @property
    def direction(self) -> str:
        """in: a caller into Airflow (caller -> route -> Airflow -> its DAGs); out: Airflow's or an account's call
        to a service."""
        return "in" if self.service == AIRFLOW_SERVICE else "out"

    @property
    def state(self) -> str:
        """no grant | failing | drift | ok | unchecked: what a reviewer looks at first (a failing call before the
        drift that may explain it: the drift is listed beside it)."""
        if self.policy is None:
            return "no grant"  # the gateway refuses this connection's token, by the spec
        if self.smoke.startswith("failed"):
            return "failing"
        if self.drift:
            return "drift"
        return "ok" if self.smoke == "ok" else "unchecked"  # another account's edge is not smoked: unchecked

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "realm": self.realm, "state": self.state,
                "direction": self.direction}


@dataclass
class TrustMap:
    spec: str  # the spec's file
    generated_at: str  # ISO 8601, UTC
    edges: list[Edge]
    checked: dict[str, str] = field(default_factory=dict)  # evidence -> what was checked, or why not

    def as_dict(self) -> dict:
        return {"spec": self.spec, "generated_at": self.generated_at, "checked": self.checked,
                "edges": [e.as_dict() for e in self.edges]}


def _edge(desired: Desired, api: TykApi, account: str, policy: TykPolicy | None,
          conn: AirflowConnection | None) -> Edge:
    lifespan = next(r.access_token_lifespan for r in desired.realms if r.realm == api.env)
    scopes = sorted(s for s, pid in api.scope_policies if policy and pid == policy.policy_id)
    lives_in = [f"Keycloak {api.env}/{account}", f"vault {SANDBOX_MOUNT}/clients/{api.env}/{account}"]
    if conn is not None:
        lives_in.append(f"vault {MOUNT}/variables/{conn.secret_key} (read by Airflow's vault token)")
    edge = Edge(
        env=api.env, account=account, service=api.service, connection=conn.conn_id if conn else None, client=account,
        scopes=scopes, policy=policy.policy_id if policy else None,
        rate=per(policy.rate, policy.per) if policy else "-", quota=per(policy.quota_max, policy.quota_renewal_rate)
        if policy else "-", api=api.api_id, route=api.listen_path, issuer=api.issuer, audience=api.audience,
        jwks=api.jwks_url, upstream=api.upstream_url, token_lifespan_s=lifespan, secret_lives_in=lives_in)
    if conn is None:
        edge.smoke = "n/a (no Airflow connection)"  # the smoke proves Airflow's connections; this account has none
    return edge


def _reaches(spec: Spec, account: str) -> list[str]:
    grant = spec.inbound_grant(account)
    return [f"dag {d}" for d in grant.dags] + [f"asset {a}" for a in grant.assets] if grant else []


def edges(spec: Spec, desired: Desired) -> list[Edge]:
    """Every grant, and every Airflow connection without one, as an edge (spec order: environment, service)."""
    out = []
    for api in desired.apis:
        conn = next((c for c in desired.connections if (c.env, c.service) == (api.env, api.service)), None)
        policies = [p for p in desired.policies if p.api_id == api.api_id]
        for p in policies:
            out.append(e := _edge(desired, api, p.account, p, conn if p.account == spec.airflow_account else None))
            if api.service == AIRFLOW_SERVICE:
                e.reaches = _reaches(spec, p.account)
        if conn is not None and not any(p.account == spec.airflow_account for p in policies):
            out.append(_edge(desired, api, spec.airflow_account, None, conn))
    return out


def _touches(change: Change, e: Edge) -> bool:
    """Whether a change `sandbox plan` would make is on this edge's path."""
    name = change.name
    return {
        "realm": name == e.env,
        "client-policy": name.startswith(f"{e.env}/"),
        "client": name == f"{e.env}/{e.account}",
        "scope": name in {f"{e.env}/{s}" for s in e.scopes},
        "api": name == e.api,
        "policy": name == e.policy,
        "connection": name == e.connection,
    }.get(change.kind, False)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def mark(edge_list: list[Edge], changes: list[Change], secret_ages: dict[str, int | None],
         verdicts: dict[str, dict], calls: list[dict]) -> None:
    """Add the evidence to each edge. `secret_ages`: '<env>/<account>' -> seconds; `verdicts`: each connection's
    latest smoke ({"ok", "verdict", "at"}); `calls`: audit records reduced to {"api", "account" (or None), "dag",
    "when"}."""
    for e in edge_list:
        e.drift = [f"{c.system}: {c.action} {c.kind} {c.name}" + (f" ({c.detail})" if c.detail else "")
                   for c in changes if _touches(c, e)]
        e.secret_age_s = secret_ages.get(f"{e.env}/{e.account}")
        row = verdicts.get(e.connection or "")
        if row is not None:
            e.smoke = "ok" if row["ok"] else f"failed at {row.get('verdict') or 'an unknown hop'}"
            e.smoke_at = _iso(row["at"]) if row.get("at") else ""
        seen: dict[str, list[tuple[float, bool]]] = {}
        for c in calls:
            if c["api"] == e.api and c["account"] in (None, e.account) and e.connection:
                seen.setdefault(c["dag"], []).append((c["when"], c.get("verified", False)))
        e.dags = [{"dag": d, "calls": len(w), "last_seen": _iso(max(t for t, _ in w)),
                   "unverified": sum(1 for _, ok in w if not ok)} for d, w in sorted(seen.items())]


def audit_calls(records: list[dict], runs=None) -> list[dict]:
    """The gateway's analytics records that a DAG made, reduced to what the map needs; `verified` when Airflow's
    task instances explain the call (audit.explained; `runs` None: none is)."""
    from sandbox.commands.audit import DAG_TAG, explained, seconds_of, tag_value

    out = []
    for rec in records:
        tags = [str(t) for t in rec.get("Tags") or []]
        dag = tag_value(tags, DAG_TAG)
        if dag is not None:
            out.append({"api": str(rec.get("APIID", "")), "account": tag_value(tags, "account-"), "dag": dag,
                        "when": seconds_of(rec.get("TimeStamp")),
                        "verified": runs is not None and explained(rec, runs)})
    return out


@dataclass
class Evidence:
    """What the live systems say about the spec's edges, apart from the smoke (read from its file at each look)."""

    changes: list[Change] = field(default_factory=list)
    ages: dict[str, int | None] = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)
    checked: dict[str, str] = field(default_factory=dict)


def evidence(spec: Spec, endpoints, paths) -> Evidence:
    """Drift, secret ages and audit records of the sandbox at `paths`; each part on its own."""
    from sandbox import reconcile
    from sandbox.clients import Clients, why_not_running
    from sandbox.commands import audit, rotation

    ev = Evidence()
    live = Clients(endpoints)
    try:
        collected = reconcile.collect(spec, endpoints, live)
        ev.changes = [s.change for s in collected.steps]
        ev.checked["drift"] = "Keycloak, Tyk and Airflow compared with the spec" + (
            "; not compared: " + "; ".join(f"{k} ({v})" for k, v in collected.skipped.items())
            if collected.skipped else "")
    except Exception as e:  # noqa: BLE001 - one part of the evidence; the map stands without it
        ev.checked["drift"] = f"not compared: {_why(e)}"
    if why := why_not_running(endpoints, "keycloak"):
        ev.checked["secrets"] = f"ages unknown: {why}"
    else:
        try:
            ev.ages = {c.name: c.age_s for c in rotation.inventory(spec, endpoints, paths, live)
                       if c.kind == "client-secret"}
            ev.checked["secrets"] = "ages from Keycloak (client.secret.creation.time)"
        except Exception as e:  # noqa: BLE001
            ev.checked["secrets"] = f"ages unknown: {_why(e)}"
    if why := why_not_running(endpoints, "redis"):
        ev.checked["audit"] = f"not read: {why}"
    else:
        try:
            records = audit.read(live.redis)
            try:
                runs, against = audit.airflow_runs(live.airflow), "each checked against Airflow's task instances"
            except Exception as e:  # noqa: BLE001 - the calls stand without Airflow; none can be verified then
                runs, against = None, f"not checked against Airflow ({_why(e)}): none verified"
            ev.calls = audit_calls(records, runs)
            unverified = sum(1 for c in ev.calls if not c["verified"])
            ev.checked["audit"] = (f"{len(ev.calls)} DAG calls in the gateway's analytics records (kept 24 h), "
                                   f"{against}" + (f"; {unverified} unverified" if unverified else ""))
        except Exception as e:  # noqa: BLE001
            ev.checked["audit"] = f"not read: {_why(e)}"
    return ev


def assemble(spec: Spec, endpoints, ev: Evidence, verdicts: dict[str, dict]) -> TrustMap:
    """The map of `spec` with evidence `ev` and the connections' latest smoke verdicts."""
    from sandbox.plan import Addresses, plan

    out = edges(spec, plan(spec, Addresses.of(endpoints)))
    mark(out, ev.changes, ev.ages, verdicts, ev.calls)
    checked = {**ev.checked, "smoke": (
        f"each connection's latest smoke, the last {_iso(max(v['at'] for v in verdicts.values()))}"
        if verdicts else "no smoke run yet (`sandbox smoke`)")}
    return TrustMap(str(spec.source), _iso(time.time()), out, checked)


def gather(spec: Spec, endpoints, paths) -> TrustMap:
    """The map of `spec` with the live evidence of the sandbox at `paths`."""
    from sandbox.commands import smoke

    return assemble(spec, endpoints, evidence(spec, endpoints, paths), smoke.verdicts_of(paths))


def _why(e: Exception) -> str:
    return getattr(e, "message", None) or f"{type(e).__name__}: {e}"
