"""The gateway's budgets: a rate limit and a quota, used up."""

from __future__ import annotations

from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.systems.tyk.doctor import quota_counters


def _cut(ctx: ScenarioContext, policy_id: str, **fields) -> None:
    gw = ctx.clients.tyk
    policy = gw.call("GET", f"/policies/{policy_id}").json()
    gw.call("PUT", f"/policies/{policy_id}", json={**policy, **fields})
    gw.reload()


class PolicyCut(Scenario):
    """A fault in the connection's policy on the gateway: doctor sees the policy differ from the spec."""

    @property
    def doctor_says(self) -> str:  # type: ignore[override]
        return f"The gateway does not match the spec: policy {self.policy} differs"


class RateLimited(PolicyCut):
    name = "rate-limited"
    story = ("A new DAG fans out a hundred mapped tasks against orders at once; the grant allows a handful of "
             "calls per window, and every other task of every DAG sharing that identity now fails at the gateway.")
    cause = "the grant's rate limit is used up for this token identity (here: cut to one call per hour)"
    fix = "spread the calls (pools, max_active_tis_per_dag) or raise the grant's rate in the spec and `sandbox apply`"
    expected = Symptom("gateway", 429, "HTTP 429 Rate Limit Exceeded", "failed at gateway: HTTP 429")

    def inject(self, ctx: ScenarioContext) -> None:
        # The baseline's call is in the window already (the gateway's limiter is Redis's sliding log).
        _cut(ctx, self.policy, rate=1, per=3600)


class QuotaExhausted(PolicyCut):
    name = "quota-exhausted"
    story = ("A backfill used up the day's quota on orders; today's scheduled runs now fail at the gateway although "
             "nothing about their credentials changed.")
    cause = "the grant's quota is used up for this token identity (here: cut to one call per hour)"
    fix = "wait for the quota's renewal, or raise the grant's quota in the spec and `sandbox apply`"
    expected = Symptom("gateway", 403, "HTTP 403 Quota exceeded", "failed at gateway: HTTP 403 Quota exceeded")
    differs = ("connections.*.gateway.policy.quota_max", "connections.*.gateway.policy.quota_used_up")

    def inject(self, ctx: ScenarioContext) -> None:
        # The baseline's call already counted against it, so one call per hour leaves nothing for the DAG run.
        _cut(ctx, self.policy, quota_max=1, quota_renewal_rate=3600)


class StaleQuotaAfterReseed(Scenario):
    name = "stale-quota-after-reseed"
    story = ("A backfill used up orders' daily quota and its retries kept calling. The team raised the quota in the "
             "spec and re-seeded (`sandbox apply`): the policy now matches the spec, the backfill is long over — and "
             "every call is still refused, until the next day.")
    cause = ("the gateway's quota counter lives in Redis apart from the policy, counts refused calls too and keeps "
             "its renewal time through any policy change: it is past the raised quota")
    fix = ("reset the identity's quota counter (Tyk's `reset_quota` on the key; `sandbox repro revert` deletes the "
           "counter here) or wait for its renewal; raise a quota by more than the calls refused since it ran out")
    expected = Symptom("gateway", 403, "HTTP 403 Quota exceeded", "failed at gateway: HTTP 403 Quota exceeded")
    doctor_says = "quota counter"
    differs = ("connections.*.gateway.policy.quota_used_up",)

    def inject(self, ctx: ScenarioContext) -> None:
        # The baseline's call made the counter; set it where the backfill left it: the spec's quota used up,
        # and the refused retries counted on top. Then the re-seed, which changes nothing on the gateway.
        quota = ctx.clients.tyk.call("GET", f"/policies/{self.policy}").json()["quota_max"]
        for key in quota_counters(lambda: ctx.clients.redis, self.policy):
            ctx.clients.redis.set(key, quota + quota // 4, keepttl=True)
        ctx.apply()

    def revert(self, ctx: ScenarioContext) -> None:
        if keys := list(quota_counters(lambda: ctx.clients.redis, self.policy)):
            ctx.clients.redis.delete(*keys)
