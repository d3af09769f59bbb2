from sandbox.scenarios.base import Context, Scenario, Symptom


class QuotaExhausted(Scenario):
    name = "quota-exhausted"
    connection = "tyk_dev_orders"
    story = ("A backfill used up the day's quota on orders; today's scheduled runs now fail at the gateway although "
             "nothing about their credentials changed.")
    cause = "the grant's quota is used up for this token identity (here: cut to one call per hour)"
    fix = "wait for the quota's renewal, or raise the grant's quota in the spec and `sandbox apply`"
    expected = Symptom("gateway", 403, "HTTP 403 Quota exceeded", "failed at gateway: HTTP 403 Quota exceeded")
    doctor_says = "The gateway does not match the spec: policy dev-airflow-orders differs"

    def inject(self, ctx: Context) -> None:
        # The baseline's call already counted against it, so one call per hour leaves nothing for the DAG run.
        gw = ctx.clients.tyk
        policy = gw.call("GET", "/policies/dev-airflow-orders").json()
        gw.call("PUT", "/policies/dev-airflow-orders", json={**policy, "quota_max": 1, "quota_renewal_rate": 3600})
        gw.reload()
