"""Who may call what, as a reviewer reads it: each grant's scopes, rate and quota, per account, service and
environment — from a spec's plan, or from what the gateway enforces now — and the difference between two of them,
written for the reviewer of a pull request (`sandbox plan -o md`). Pure functions of plain data."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.commands.audit import tag_value
from sandbox.commands.trust_map import per
from sandbox.plan import Desired
from sandbox.systems.tyk.applier import SCHEME, api_managed, policy_managed


@dataclass(frozen=True)
class Grant:
    env: str
    account: str
    service: str
    scopes: tuple[str, ...]
    rate: tuple[int, int]  # calls, per seconds
    quota: tuple[int, int]  # calls (-1: none), per seconds

    @property
    def key(self) -> tuple[str, str, str]:
        return self.env, self.account, self.service


@dataclass(frozen=True)
class AccessChange:
    env: str
    account: str
    service: str
    change: str  # gains access | loses access | gains scopes | loses scopes | rate lowered/raised | quota ...
    before: str
    after: str


def of_desired(desired: Desired) -> dict[tuple[str, str, str], Grant]:
    out = {}
    for p in desired.policies:
        api = next(a for a in desired.apis if a.api_id == p.api_id)
        scopes = tuple(sorted(s for s, pid in api.scope_policies if pid == p.policy_id))
        out[p.env, p.account, p.service] = Grant(p.env, p.account, p.service, scopes, (p.rate, p.per),
                                                 (p.quota_max, p.quota_renewal_rate))
    return out


def of_gateway(policies: dict[str, dict], apis: dict[str, dict]) -> dict[tuple[str, str, str], Grant]:
    """What the gateway enforces: its managed policies (their tags name the grant) and the scopes each managed API
    maps to them."""
    scopes: dict[str, set[str]] = {}
    for oas in apis.values():
        if not api_managed(oas):
            continue
        jwt = (((oas.get("x-tyk-api-gateway") or {}).get("server") or {}).get("authentication") or {}) \
            .get("securitySchemes", {}).get(SCHEME, {})
        for m in (jwt.get("scopes") or {}).get("scopeToPolicyMapping") or []:
            scopes.setdefault(m.get("policyId", ""), set()).add(m.get("scope", ""))
    out = {}
    for pid, pol in policies.items():
        tags = [str(t) for t in pol.get("tags") or []]
        env, account, service = (tag_value(tags, f"{k}-") for k in ("env", "account", "service"))
        if not (policy_managed(pol) and env and account and service):
            continue
        out[env, account, service] = Grant(env, account, service, tuple(sorted(scopes.get(pid, ()))),
                                           (int(pol.get("rate", 0)), int(pol.get("per", 1))),
                                           (int(pol.get("quota_max", -1)), int(pol.get("quota_renewal_rate", -1))))
    return out


def _per_second(pair: tuple[int, int]) -> float:
    count, seconds = pair
    return float("inf") if count < 0 else count / max(seconds, 1)


def _describe(g: Grant) -> str:
    return f"{' '.join(g.scopes) or '(no scope)'}; rate {per(*g.rate)}; quota {per(*g.quota)}"


def diff(before: dict[tuple[str, str, str], Grant], after: dict[tuple[str, str, str], Grant]) -> list[AccessChange]:
    out = []
    for key in sorted(before.keys() | after.keys()):
        b, a = before.get(key), after.get(key)
        if b is None:
            out.append(AccessChange(*key, "gains access", "-", _describe(a)))
            continue
        if a is None:
            out.append(AccessChange(*key, "loses access", _describe(b), "-"))
            continue
        if gained := sorted(set(a.scopes) - set(b.scopes)):
            out.append(AccessChange(*key, "gains scopes", " ".join(b.scopes), " ".join(gained) + " added"))
        if lost := sorted(set(b.scopes) - set(a.scopes)):
            out.append(AccessChange(*key, "loses scopes", " ".join(b.scopes), " ".join(lost) + " removed"))
        for what, bv, av in (("rate", b.rate, a.rate), ("quota", b.quota, a.quota)):
            if bv != av:
                way = "lowered" if _per_second(av) < _per_second(bv) else "raised" if _per_second(av) > \
                    _per_second(bv) else "changed"
                out.append(AccessChange(*key, f"{what} {way}", per(*bv), per(*av)))
    return out


def markdown(changes: list[AccessChange], before: str, after: str) -> str:
    lines = [f"## Access changes: {after} against {before}", ""]
    if not changes:
        return "\n".join(lines + ["No access changes: every account keeps the same scopes, rates and quotas.", ""])
    lines += [f"{len(changes)} change(s). Each row is one account's access to one service in one environment.", "",
              "| environment | account | service | change | before | after |", "|---|---|---|---|---|---|"]
    lines += [f"| {c.env} | {c.account} | {c.service} | **{c.change}** | {c.before} | {c.after} |" for c in changes]
    return "\n".join(lines) + "\n"
