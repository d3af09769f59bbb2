"""Keycloak's rotation steps: a client's secret regenerated (the old one kept valid as its "rotated secret" by the
realm's policy) and invalidated, a realm's RS256 keys listed, added passive, made active, settled after an interrupted
rotation, and dated by the name the sandbox gives them. `sandbox rotate` (commands/rotation.py) orders them, with the
vault and the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sandbox.errors import SandboxError
from sandbox.systems.keycloak.applier import CLIENT_LIFESPAN
from sandbox.systems.keycloak.realm_keys import KEY_PROVIDER

KEY_NAME = "sandbox-rs256-"  # + the UTC time it was made: the key's age, for `status --credentials`
SECRET_CREATED = "client.secret.creation.time"  # Keycloak's attribute: epoch seconds the secret was made


@dataclass
class KeySettlement:
    """How one realm gets back to one signing key after an interrupted rotation."""

    signing: dict  # the key that signs from now on
    unused: list[dict]  # new keys that never signed (added passive): rolled back
    old: list[dict]  # keys the rotation was replacing: removed now


def key_settlement(keys: list[dict], names: dict[str, str]) -> KeySettlement | None:
    """From a realm's RS256 keys (`GET /keys` entries) and its key components' names (id -> name): None when it has
    one key. A passive key the sandbox made above the signing key's priority never signed: it is rolled back. Once
    the new key signs, the old ones go now rather than never (their tokens' callers fetch new ones)."""
    if len(keys) <= 1:
        return None
    prio = lambda k: int(k.get("providerPriority") or 0)  # noqa: E731
    active = [k for k in keys if k.get("status") == "ACTIVE"]
    signing = max(active or keys, key=prio)
    unused = [k for k in keys if k.get("status") == "PASSIVE" and prio(k) > prio(signing)
              and names.get(k["providerId"], "").startswith(KEY_NAME)]
    old = [k for k in keys if k is not signing and k not in unused]
    return KeySettlement(signing, unused, old)


def client_uuid(admin, realm: str, client_id: str) -> str:
    admin.change_current_realm(realm)
    uuid = admin.get_client_id(client_id)
    if not uuid:
        raise SandboxError(f"Keycloak's realm {realm} has no client {client_id}.", "run `sandbox apply` first.")
    return uuid


def _rotated(realm: str, uuid: str) -> str:
    """Keycloak's admin path of a client's rotated (old, still valid) secret."""
    return f"admin/realms/{realm}/clients/{uuid}/client-secret/rotated"


def invalidate_rotated(admin, realm: str, uuid: str) -> None:
    r = admin.connection.raw_delete(_rotated(realm, uuid))
    if r.status_code not in (200, 204, 404):
        raise SandboxError(f"Keycloak refused to invalidate the old secret of a client in {realm}: HTTP "
                           f"{r.status_code} {r.text[:200]}", "run `sandbox rotate` again.")


def has_rotated(admin, realm: str, uuid: str) -> bool:
    """Whether the client's old secret is still valid beside its new one (a rotation's grace, or one left over)."""
    r = admin.connection.raw_get(_rotated(realm, uuid))
    return r.status_code == 200 and bool(r.content) and bool(r.json().get("value"))


# ---- signing keys ------------------------------------------------------------------------------------
def signing_keys(keys: list[dict], statuses: tuple[str, ...] = ("ACTIVE",)) -> list[dict]:
    """The realm's RS256 signing keys (`GET /keys`' entries: kid, providerId, status…) that sign now, or (with
    PASSIVE) also those that only verify — a rotation retires both: a passive key left by an interrupted rotation
    would otherwise stay published for ever."""
    return [k for k in keys if k.get("algorithm") == "RS256" and k.get("use", "SIG") == "SIG"
            and k.get("status") in statuses]


def longest_lifespan(realm: dict, clients: list[dict], signs_in_again: tuple[str, ...] = ()) -> int:
    """Seconds the longest-lived access token of a realm lives: its lifespan, or a client's longer override.
    `signs_in_again`: clients whose holder is told (the sandbox's own caller): their tokens need no grace."""
    spans = [int(realm.get("accessTokenLifespan") or 300)]
    spans += [int(v) for c in clients if c.get("clientId") not in signs_in_again
              and (v := (c.get("attributes") or {}).get(CLIENT_LIFESPAN)) and v.isdigit()]
    return max(spans)


def set_active(admin, component_id: str, active: bool) -> None:
    c = admin.get_component(component_id)
    c["config"] = {**c.get("config", {}), "active": ["true" if active else "false"]}
    admin.update_component(component_id, c)


def key_age(name: str, now: float) -> int | None:
    if not name.startswith(KEY_NAME):
        return None
    try:
        made = datetime.strptime(name[len(KEY_NAME):], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return int(now - made)


def add_key(admin, realm: str, active: bool) -> tuple[str, str]:
    """A new RS256 key for `realm`, above the signing key's priority, named with the time it was made: its
    component's id and its kid. Passive (`active` False) it is published in the JWKS and signs nothing."""
    priority = max([int(k.get("providerPriority") or 0) for k in signing_keys(admin.get_keys().get("keys") or [])]
                   or [100]) + 1
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    new_id = admin.create_component({
        "name": f"{KEY_NAME}{stamp}", "providerId": "rsa-generated", "providerType": KEY_PROVIDER,
        "parentId": admin.get_realm(realm)["id"],
        "config": {"priority": [str(priority)], "keySize": ["2048"], "algorithm": ["RS256"],
                   "enabled": ["true"], "active": ["true" if active else "false"]}})
    return new_id, next((k["kid"] for k in admin.get_keys().get("keys") or [] if k.get("providerId") == new_id), "")
