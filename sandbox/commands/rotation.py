"""Central rotation: client secrets and realms' signing keys, changed with overlap so that no caller fails.

A client secret (per account and environment): Keycloak regenerates it and, by the realm's rotation policy
(the keycloak applier's ROTATION), keeps the old one valid as the client's "rotated secret"; the new one is written
where every reader reads it (the vault, the CLI's file); after SECRET_GRACE — longer than any reader keeps a
secret (Airflow's secrets backend: 5 s) plus a token request — the old one is invalidated.

A signing key (per realm), the order Keycloak's documentation gives: a new RS256 key added passive (published
in the realm's JWKS, signing nothing); the gateway's cached JWKS flushed, so it knows the new `kid` before any
token carries it; the new key made active and the old one passive (it still verifies the tokens it signed);
after the longest token lifespan those tokens have all expired, the old key is removed and the gateway's JWKS
flushed again, so it stops trusting it.

`now` skips every overlap: the old secret invalidated as soon as the new one is distributed (never before: Airflow
would be left with no valid secret), the new key active and the old one removed at once with the gateway not
told — the failures a rotation without grace causes.

One rotation at a time (a lock in the home; a second one says so and waits). A rotation notes what it is doing in
the home before its first change and forgets it after its last: one that was killed half-way is finished by the
next `rotate` or `up` (`settle`), so no old secret or key stays trusted for ever.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from sandbox import reconcile
from sandbox.clients import Clients, why_not_running
from sandbox.errors import SandboxError, use_one_of
from sandbox.host.credentials import write_private
from sandbox.host.privacy import private_umask
from sandbox.host.provision import file_lock
from sandbox.paths import SandboxPaths
from sandbox.plan import SANDBOX_CALLER, Addresses, plan
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.spec import Spec
from sandbox.systems.keycloak.realm_keys import KEY_PROVIDER
from sandbox.systems.keycloak.rotation import (
    KEY_NAME,
    SECRET_CREATED,
    add_key,
    client_uuid,
    has_rotated,
    invalidate_rotated,
    key_age,
    key_settlement,
    longest_lifespan,
    set_active,
    signing_keys,
)
from sandbox.systems.openbao.client import SANDBOX_MOUNT, VaultError

SECRET_GRACE = 15.0  # seconds the old secret stays valid after the new one is in the vault
CLOCK_SKEW = 10.0  # added to the longest token lifespan before the old key goes


@dataclass
class Rotated:
    kind: str  # client-secret | signing-key
    name: str  # env/account, or the realm
    old: str  # what was replaced (a kid; never a secret)
    new: str
    grace_s: float  # how long old and new were both valid (0: --now)
    seconds: float


def secret_targets(spec: Spec, accounts: list[str], env: str | None) -> list[tuple[str, str]]:
    """(environment, account) of every client to rotate: the accounts named (every one when none), in `env` or
    in every environment each has."""
    for a in accounts:
        if a not in spec.accounts:
            raise SandboxError(f"No account named {a!r} in {spec.source}.",
                               use_one_of(a, spec.accounts), exit_code=2)
    if env is not None and env not in spec.environments:
        raise SandboxError(f"No environment {env!r} in {spec.source}.",
                           use_one_of(env, spec.environments), exit_code=2)
    out = [(e, a) for a in (accounts or list(spec.accounts)) for e in spec.accounts[a].environments
           if env is None or e == env]
    if not out:
        raise SandboxError(f"{', '.join(accounts)} has no client in {env!r}.",
                           "leave out --env, or name an environment the account is in.", exit_code=2)
    return out


def realm_targets(spec: Spec, env: str | None) -> list[str]:
    if env is not None and env not in spec.environments:
        raise SandboxError(f"No environment {env!r} in {spec.source}.",
                           use_one_of(env, spec.environments), exit_code=2)
    return [env] if env else list(spec.environments)


# ---- one at a time, and none left half-done -----------------------------------------------------------
@dataclass
class Underway:
    """What a rotation is changing, noted before its first change and removed after its last."""

    kind: str  # client-secret | signing-key
    targets: list[list[str]]  # [realm, account] per client, or [realm] per realm
    pid: int
    started: float


def underway(paths: SandboxPaths) -> Underway | None:
    try:
        return Underway(**json.loads(paths.rotation_underway.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def exclusive(paths: SandboxPaths, say, wait: bool = True):
    """The rotation lock (yields True); a second rotation says that it waits. With `wait=False`, yields False at
    once when a rotation holds it (`up` must not settle what a live rotation is doing)."""
    def busy() -> bool:
        if wait:
            live = underway(paths)
            say("rotate", "another `sandbox rotate` is running" + (f" (pid {live.pid}, {live.kind})" if live else "")
                + ": this one waits for it to end")
        return wait

    return file_lock(paths.rotation_lock, busy)


@contextmanager
def _noted(paths: SandboxPaths, kind: str, targets: list[list[str]]) -> Iterator[None]:
    write_private(paths.rotation_underway, json.dumps(asdict(Underway(kind, targets, os.getpid(), time.time()))))
    yield
    paths.rotation_underway.unlink(missing_ok=True)  # only a rotation that ended is forgotten: an error leaves it


def settle(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, say) -> list[str]:
    """Finish a rotation that was interrupted (killed, Ctrl-C, a failed call): its clients' old secrets invalidated
    (their new ones are distributed first), its realms left with the one key that signs, and the gateway told. Run
    by `rotate` first and by `up` after apply (which distributes the clients' current secrets); nothing when no
    rotation was left half-done, or when one is running now. What it did, as sentences."""
    if underway(paths) is None:
        return []
    with exclusive(paths, say, wait=False) as mine:
        return _settle(spec, endpoints, paths, say) if mine else []


def _settle(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, say) -> list[str]:
    """`settle`, the lock held."""
    left = underway(paths)
    if left is None:
        return []
    live = Clients(endpoints)
    done = []
    if left.kind == "client-secret":
        done = _settle_secrets(spec, endpoints, paths, live, left, say)
    elif left.kind == "signing-key":
        done = _settle_keys(live, [t[0] for t in left.targets], say)
    paths.rotation_underway.unlink(missing_ok=True)
    return done


def _settle_secrets(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, live: Clients, left: Underway,
                    say) -> list[str]:
    # the readers get each client's current secret before the old one goes (after `up`'s apply this writes nothing;
    # before a new `rotate` it is what the killed one never wrote)
    _distribute(spec, endpoints, paths, live, say)
    admin = live.keycloak
    done = []
    for realm, account in left.targets:
        uuid = client_uuid(admin, realm, account)
        invalidate_rotated(admin, realm, uuid)
        done.append(f"{realm}/{account}: the old secret of an interrupted rotation is invalidated")
    admin.change_current_realm("master")
    for line in done:
        say("keycloak", line)
    return done






def _settle_keys(live: Clients, realms: list[str], say) -> list[str]:
    admin = live.keycloak
    done = []
    for realm in realms:
        admin.change_current_realm(realm)
        names = {c["id"]: c.get("name", "") for c in admin.get_components({"type": KEY_PROVIDER})}
        plan_ = key_settlement(signing_keys(admin.get_keys().get("keys") or [], ("ACTIVE", "PASSIVE")), names)
        if plan_ is None:
            continue
        for k in plan_.unused:  # the rotation stopped before its new key signed anything: roll back
            admin.delete_component(k["providerId"])
        if plan_.unused:
            done.append(f"{realm}: the unused new key {', '.join(k['kid'] for k in plan_.unused)} of an interrupted "
                        "rotation is removed")
        if plan_.signing.get("status") != "ACTIVE":
            set_active(admin, plan_.signing["providerId"], True)
        for k in plan_.old:
            admin.delete_component(k["providerId"])
        if plan_.old:
            done.append(f"{realm}: {plan_.signing['kid']} signs; the old key {', '.join(k['kid'] for k in plan_.old)} "
                        "of an interrupted rotation is removed")
    admin.change_current_realm("master")
    for line in done:
        say("keycloak", line)
    if done:
        _flush_gateway(live, say)
    return done


# ---- client secrets ----------------------------------------------------------------------------------
def _distribute(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, live: Clients, say) -> None:
    """Every client's current secret, from Keycloak to where its readers read it (the vault, the CLI's file)."""
    with private_umask():
        skipped: dict[str, str] = {}
        reconcile.distribute_secrets(spec, endpoints, paths, live, plan(spec, Addresses.of(endpoints)), skipped)
    if skipped:
        say("openbao", f"not written to the vault: {skipped['openbao']}")






def rotate_secrets(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, targets: list[tuple[str, str]],
                   now: bool, say) -> list[Rotated]:
    vault = endpoints.components.get("openbao")
    if vault is not None and vault.state != "disabled" and (why := why_not_running(endpoints, "openbao")):
        raise SandboxError(f"Airflow reads the client secrets from the vault, and {why}: a rotation now would leave "
                           "it the old secret once that is invalidated.", "run `sandbox up`, then rotate again.")
    with exclusive(paths, say):
        _settle(spec, endpoints, paths, say)
        with _noted(paths, "client-secret", [list(t) for t in targets]):
            return _rotate_secrets(spec, endpoints, paths, targets, now, say)


def _rotate_secrets(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, targets: list[tuple[str, str]],
                    now: bool, say) -> list[Rotated]:
    live = Clients(endpoints)
    admin = live.keycloak
    t0 = time.monotonic()
    uuids = {}
    for realm, account in targets:
        uuids[(realm, account)] = uuid = client_uuid(admin, realm, account)
        admin.generate_client_secrets(uuid)
        say("keycloak", f"{realm}/{account}: new secret, the old one still valid")
    _distribute(spec, endpoints, paths, live, say)
    say("openbao", "the new secrets are in the vault and the CLI's file")
    if not now:
        say("keycloak", f"grace: {SECRET_GRACE:.0f} s for every reader to take the new secret")
        time.sleep(SECRET_GRACE)
    for (realm, _), uuid in uuids.items():
        invalidate_rotated(admin, realm, uuid)
    say("keycloak", "the old secrets are invalidated" + (" at once, with no grace for readers" if now else ""))
    admin.change_current_realm("master")
    secs = round(time.monotonic() - t0, 1)
    return [Rotated("client-secret", f"{realm}/{account}", "invalidated " + ("at once" if now else "after the grace"),
                    f"vault {SANDBOX_MOUNT}/clients/{realm}/{account}", 0.0 if now else SECRET_GRACE, secs)
            for realm, account in targets]








def _flush_gateway(live: Clients, say) -> None:
    if live.endpoints.components["tyk"].state == "disabled":
        return  # left out of this sandbox: no cache to flush
    live.tyk.forget_all_jwks()
    say("tyk", "JWKS caches flushed: the gateway fetches the realms' keys again")


@dataclass
class _KeyRotation:
    realm: str
    old: list[dict]  # the keys it replaces (GET /keys entries)
    new_id: str = ""  # the new key's component
    new_kid: str = ""


def rotate_signing_keys(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, realms: list[str], now: bool,
                        say) -> list[Rotated]:
    with exclusive(paths, say):
        _settle(spec, endpoints, paths, say)
        with _noted(paths, "signing-key", [[r] for r in realms]):
            return _rotate_signing_keys(endpoints, realms, now, say)


def _rotate_signing_keys(endpoints: Endpoints, realms: list[str], now: bool, say) -> list[Rotated]:
    live = Clients(endpoints)
    admin = live.keycloak
    t0 = time.monotonic()
    work = []
    for realm in realms:  # 1. a new key per realm: passive (or, now, active at once)
        admin.change_current_realm(realm)
        old = signing_keys(admin.get_keys().get("keys") or [], ("ACTIVE", "PASSIVE"))
        r = _KeyRotation(realm, old, *add_key(admin, realm, active=now))
        work.append(r)
        say("keycloak", f"{realm}: new signing key {r.new_kid} " + ("active at once" if now else "added passive"))
    if now:
        for r in work:
            admin.change_current_realm(r.realm)
            for k in r.old:
                admin.delete_component(k["providerId"])
            say("keycloak", f"{r.realm}: old key {', '.join(k['kid'] for k in r.old)} removed at once; the gateway "
                "was not told")
        return _key_results(work, 0.0, t0)
    _flush_gateway(live, say)  # 2. the gateway fetches the JWKS again, new kid included, before any token has it
    wait = 0
    for r in work:  # 3. the new key signs; the old one only verifies
        admin.change_current_realm(r.realm)
        set_active(admin, r.new_id, True)
        for k in r.old:
            set_active(admin, k["providerId"], False)
        # the sandbox's own caller's hour-long token is not waited for: its session signs in again when a token
        # of the retired key is refused (SignedIn)
        wait = max(wait, longest_lifespan(admin.get_realm(r.realm), admin.get_clients(), (SANDBOX_CALLER,)))
        say("keycloak", f"{r.realm}: {r.new_kid} signs now; the old key only verifies")
    grace = wait + CLOCK_SKEW
    deadline = time.monotonic() + grace
    while (left := deadline - time.monotonic()) > 0:  # 4. every token the old key signed expires
        say("keycloak", f"old keys retire in {left:.0f} s (the longest token lifespan, {wait} s, "
            f"and {CLOCK_SKEW:.0f} s)")
        time.sleep(min(30.0, left))
    for r in work:  # 5. the old key goes, and the gateway forgets it
        admin.change_current_realm(r.realm)
        for k in r.old:
            admin.delete_component(k["providerId"])
    say("keycloak", "old keys removed")
    _flush_gateway(live, say)
    admin.change_current_realm("master")
    return _key_results(work, grace, t0)


def _key_results(work: list[_KeyRotation], grace: float, t0: float) -> list[Rotated]:
    secs = round(time.monotonic() - t0, 1)
    return [Rotated("signing-key", r.realm, ", ".join(k["kid"] for k in r.old), r.new_kid, grace, secs)
            for r in work]


# ---- ages --------------------------------------------------------------------------------------------
@dataclass
class Credential:
    kind: str  # client-secret | signing-key | vault-token
    name: str
    lives_in: str
    age_s: int | None  # None: not known (a realm's first key carries no date)
    detail: str = ""




def inventory(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, live: Clients | None = None) -> list[Credential]:
    """Every credential the sandbox manages, where it lives and how old it is (`live`: clients already logged in)."""
    live = live or Clients(endpoints)
    admin = live.keycloak
    now = time.time()
    out = []
    for realm in spec.environments:
        admin.change_current_realm(realm)
        clients = {c["clientId"]: c for c in admin.get_clients()}
        for account, acc in spec.accounts.items():
            if realm not in acc.environments or account not in clients:
                continue
            made = (clients[account].get("attributes") or {}).get(SECRET_CREATED, "")
            out.append(Credential("client-secret", f"{realm}/{account}",
                                  f"Keycloak; vault sandbox/clients/{realm}/{account}",
                                  int(now - int(made)) if made.isdigit() else None,
                                  "old secret still valid" if has_rotated(admin, realm, clients[account]["id"])
                                  else ""))
        components = {c["id"]: c for c in admin.get_components({"type": KEY_PROVIDER})}
        for k in signing_keys(admin.get_keys().get("keys") or []):
            name = components.get(k["providerId"], {}).get("name", "")
            out.append(Credential("signing-key", realm, f"Keycloak realm {realm} ({name})", key_age(name, now),
                                  f"kid {k['kid']}" + ("" if name.startswith(KEY_NAME) else "; the realm's first")))
    admin.change_current_realm("master")
    token_file = AirflowHandoff.of(paths).vault_token
    if token_file.exists():
        try:
            info = live.vault.call("POST", "auth/token/lookup", {"token": token_file.read_text().strip()})["data"]
            out.append(Credential("vault-token", "airflow", str(token_file), int(now - int(info["creation_time"])),
                                  f"policies {', '.join(info.get('policies') or [])}; renewed at every `sandbox up`"))
        except VaultError as e:
            out.append(Credential("vault-token", "airflow", str(token_file), None, e.message))
    return out
