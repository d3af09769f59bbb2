"""Keycloak's part of `sandbox doctor`: the token hop (its refusals, in its words) and the claims hop (what the
gateway will check in the token it issued)."""

from __future__ import annotations

from urllib.parse import urlsplit

from sandbox.plan import AirflowConnection
from sandbox.systems.airflow.token_helper import TokenError
from sandbox.systems.checks import Hop, Judged

CLOCK_SKEW = 30  # seconds of clock difference a gateway typically tolerates


def check_claims(claims: dict, want: AirflowConnection, issuer: str, realm_kids: set[str], kid: str | None,
                 now: float, lifespan: int | None = None) -> list[str]:
    """What the gateway would refuse in these claims (empty when nothing)."""
    problems = []
    if claims.get("exp", 0) + CLOCK_SKEW < now:
        problems.append(f"token expired {now - claims['exp']:.0f}s ago")
    if claims.get("iat", 0) > now + 1:  # the gateway allows no skew: a token from the future is refused
        problems.append(f"iat is {claims['iat'] - now:.0f}s in the future: the IdP's clock is ahead of this one")
    if claims.get("iss") != issuer:
        problems.append(f"iss is {claims.get('iss')!r}, the gateway trusts {issuer!r}")
    auds = audiences(claims)
    if want.audience not in auds:
        problems.append(f"aud {auds} lacks {want.audience!r}")
    missing = sorted(set(want.scope.split()) - set(str(claims.get("scope", "")).split()))
    if missing:
        problems.append(f"scope lacks {' '.join(missing)}")
    if kid is not None and kid not in realm_kids:
        problems.append(f"kid {kid} is not among the realm's current keys")
    if lifespan and {"exp", "iat"} <= claims.keys() and claims["exp"] - claims["iat"] != lifespan:
        problems.append(f"the token lives {claims['exp'] - claims['iat']}s, the spec says {lifespan}s "
                        "(a lifespan override on the client)")
    return problems


def audiences(claims: dict) -> list[str]:
    """A token's `aud` as a list (Keycloak writes one audience as a string)."""
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else (aud or [])


def follows_request_host(iss: str | None, token_url: str, trusted: str) -> bool:
    """Whether `iss` names the address the token was fetched at rather than the issuer the gateway trusts: what
    Keycloak does when its hostname is not fixed (a container fetching at keycloak:8080, the host at 127.0.0.1)."""
    got, asked, want = urlsplit(iss or ""), urlsplit(token_url), urlsplit(trusted)
    return bool(iss) and got.netloc == asked.netloc and got.netloc != want.netloc and got.path == want.path


def claims_fix(problem: str) -> str:
    if "in the future" in problem:
        return "sync the clocks (NTP) of the IdP and the gateway"
    return "`sandbox apply` restores the client's scopes, audience mapper and lifespan"


def judge_token(want: AirflowConnection, error: TokenError | None, ms: float) -> Judged:
    if error is None:
        return Hop("token", True, f"{want.client_id} in {want.env} ({ms:.0f} ms)"), None
    if error.status == 400 and "invalid_scope" in str(error):
        verdict = (f"Keycloak will not grant {want.client_id} the scopes its connection asks for ({want.scope}): the "
                   "client lacks one of them. Fix: `sandbox apply` restores the client's scopes.")
    elif error.status == 401:
        verdict = (f"Keycloak refuses {want.client_id}'s secret: it was rotated in Keycloak and Airflow still has the "
                   "old one. Fix: `sandbox apply` redistributes it.")
    else:
        verdict = f"Keycloak refused a token for {want.client_id} ({error}). Fix: `sandbox apply`."
    return Hop("token", False, str(error)), verdict


def judge_claims(want: AirflowConnection, claims: dict, issuer: str, problems: list[str]) -> Judged:
    """`problems`: what `check_claims` found against what the gateway checks (`issuer`: the one it trusts)."""
    hop = Hop("claims", not problems, "; ".join(problems) or
              f"iss, aud {want.audience}, scope {want.scope or '(none)'}, kid current")
    if follows_request_host(claims.get("iss"), want.token_url, issuer):  # before the generic issuer verdict
        return hop, (
            f"Keycloak's hostname is not fixed: {want.client_id}'s tokens, fetched at "
            f"{urlsplit(want.token_url).netloc} (as Airflow's tasks reach it), carry iss {claims.get('iss')}, "
            f"while the gateway trusts {issuer} (the address the host uses). Fix: fix Keycloak's hostname to "
            "the host's URL (KC_HOSTNAME or --hostname, which the sandbox sets; `sandbox repro revert` restores it), "
            "so every token carries one issuer wherever it was fetched.")
    if problems:
        return hop, (f"The gateway would refuse {want.client_id}'s token in {want.env}: {problems[0]}. "
                     f"Fix: {claims_fix(problems[0])}.")
    return hop, None
