"""`sandbox compare`: two snapshots' differences, in the order a call travels, and — where one side's doctor verdict
fails — the difference that explains it, named by the catalogue scenario whose fault makes it. Pure: plain data in,
plain data out."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

# doctor's hops in the order a task's call takes them, then what is true of the machine as a whole
HOPS = ("connection", "secret", "token", "claims", "gateway", "upstream", "machine")
# which hop a fact decides, by its path (the first pattern that matches)
HOP_OF = (
    ("connections.*.defined_in", "connection"), ("connections.*.metastore*", "connection"),
    ("processes.*", "connection"), ("tasks_home.*", "connection"),  # what a task's HTTP client does on its way
    ("vault.*", "secret"),
    ("connections.*.token.error", "token"), ("idp.*.signing_keys", "token"), ("idp.*.token_kid_published", "token"),
    ("idp.*", "claims"), ("connections.*.token.*", "claims"),
    ("connections.*.gateway.*", "gateway"),
    ("*", "machine"),
)
IGNORED = ("snapshot", "taken", "doctor.*")  # when it was taken; the verdicts are read apart, not diffed
TOLERANCE = {"idp.*.clock_offset_s": 5}  # seconds: two readings of one clock differ by the time between them


@dataclass(frozen=True)
class Known:
    """What the catalogue knows of a scenario, for compare: the snapshot facts its fault changes (path patterns,
    every one of them differs when it is in), its cause and fix, and doctor's words for it (on any connection)."""

    name: str
    differs: tuple[str, ...]
    cause: str
    fix: str
    doctor_says: tuple[str, ...]


@dataclass(frozen=True)
class Difference:
    hop: str
    path: str
    a: Any  # None: the fact is absent on that side
    b: Any


@dataclass(frozen=True)
class Explained:
    side: str  # the side whose doctor verdict fails: "A" or "B"
    connection: str
    failing_hop: str
    scenario: str
    paths: tuple[str, ...]
    sentence: str


@dataclass(frozen=True)
class Comparison:
    a: dict
    b: dict
    differences: list[Difference]
    failing: dict[str, list[str]]  # side -> its connections doctor fails
    explained: list[Explained]

    @property
    def equal(self) -> bool:
        return not self.differences

    def failures(self) -> list[tuple[str, str, Explained | None]]:
        """Each connection doctor fails on a side: (side, connection, the difference that explains it or None)."""
        return [(side, conn, next((x for x in self.explained if x.side == side and x.connection == conn), None))
                for side, conns in self.failing.items() for conn in conns]

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "equal": self.equal, "differences": [vars(d) for d in self.differences],
                "failing": self.failing, "explained": [{**vars(e), "paths": list(e.paths)} for e in self.explained]}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A snapshot as path -> leaf (`connections.tyk_dev_orders.token.aud`); lists are leaves; an empty dict holds
    no fact (a proxy that one side has is a fact the other lacks, not a changed dict)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def hop_of(path: str) -> str:
    return next(hop for pattern, hop in HOP_OF if fnmatchcase(path, pattern))


def _differ(path: str, a: Any, b: Any) -> bool:
    tolerance = next((t for pattern, t in TOLERANCE.items() if fnmatchcase(path, pattern)), None)
    if tolerance is not None and isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) > tolerance
    return a != b


def differences(a: dict, b: dict) -> list[Difference]:
    fa, fb = flatten(a), flatten(b)
    found = [Difference(hop_of(p), p, fa.get(p), fb.get(p)) for p in dict.fromkeys([*fa, *fb])
             if not any(fnmatchcase(p, i) for i in IGNORED) and _differ(p, fa.get(p), fb.get(p))]
    return sorted(found, key=lambda d: HOPS.index(d.hop))  # stable: each hop's facts in the snapshot's order


def compare(a: dict, b: dict, known: list[Known]) -> Comparison:
    diffs = differences(a, b)
    failing = {side: sorted(c for c, d in s.get("doctor", {}).items() if not d.get("ok"))
               for side, s in (("A", a), ("B", b))}  # `load` checked the shape of a file's
    explained = []
    for side, s in (("A", a), ("B", b)):
        for conn in failing[side]:
            verdict = s["doctor"][conn]
            realm = (s.get("connections", {}).get(conn) or {}).get("env")
            if (e := explain(side, conn, verdict.get("hop") or "upstream", verdict.get("verdict", ""), diffs, known,
                             realm)):
                explained.append(e)
    return Comparison(_about(a), _about(b), diffs, failing, explained)


def _about(s: dict) -> dict:
    return {"taken": s.get("taken"), "runtime": s.get("machine", {}).get("runtime")}


def explain(side: str, conn: str, hop: str, verdict: str, diffs: list[Difference],
            known: list[Known], realm: str | None = None) -> Explained | None:
    """The scenario whose every fact differs and whose words doctor says on the failing side (a fact that differs
    for another reason — a sealed vault leaves no token, so no claims — names nothing doctor does not confirm); of
    several, the one whose difference lies on the way to the failing hop, then the more specific (more facts)."""
    relevant = [d for d in diffs if _concerns(d.path, conn, realm)]
    at = HOPS.index(hop) if hop in HOPS else len(HOPS)  # a partly-down Airflow's hops are its services
    candidates = []
    for k in known:
        hit = [next((d for d in relevant if fnmatchcase(d.path, p)), None) for p in k.differs]
        if k.differs and all(hit) and any(words in verdict for words in k.doctor_says):
            first = min(HOPS.index(d.hop) for d in hit if d)
            candidates.append(((first > at, -len(k.differs)), k, [d for d in hit if d]))
    if not candidates:
        return None
    _, k, hit = min(candidates, key=lambda c: c[0])
    other = "A" if side == "B" else "B"
    d = hit[0]
    mine, theirs = (d.b, d.a) if side == "B" else (d.a, d.b)
    sentence = (f"{side}'s {conn} fails at {hop}: {d.path} is {_shown(mine)} on {side}, {_shown(theirs)} on {other} "
                f"— {k.cause} ({k.name}). Fix: {k.fix}.")
    return Explained(side, conn, hop, k.name, tuple(x.path for x in hit), sentence)


def _concerns(path: str, conn: str, realm: str | None) -> bool:
    """A fact of this connection, of its realm, or of the machine as a whole (not another connection's or realm's)."""
    parts = path.split(".")
    if parts[0] == "connections":
        return parts[1:2] == [conn]
    return parts[0] != "idp" or realm is None or parts[1:2] == [realm]


def _shown(value: Any) -> str:
    return "absent" if value is None else repr(value)
