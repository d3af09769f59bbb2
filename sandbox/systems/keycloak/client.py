"""Keycloak's side of the sandbox: the OIDC URLs of a realm (pure) and the master realm's admin, logged in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.errors import SandboxError

if TYPE_CHECKING:  # the library takes half a second to load: only commands that talk to Keycloak load it
    from keycloak import KeycloakAdmin


# ---- OIDC URLs of a Keycloak realm (pure) ------------------------------------------------------------
def issuer(keycloak_url: str, realm: str) -> str:
    return f"{keycloak_url}/realms/{realm}"


def token_url(keycloak_url: str, realm: str) -> str:
    return f"{issuer(keycloak_url, realm)}/protocol/openid-connect/token"


def jwks_url(keycloak_url: str, realm: str) -> str:
    return f"{issuer(keycloak_url, realm)}/protocol/openid-connect/certs"


def keycloak_admin(url: str, password: str) -> KeycloakAdmin:
    """The master realm's admin, logged in (and checked) once."""
    from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
    from keycloak.exceptions import KeycloakError

    try:
        admin = KeycloakAdmin(connection=KeycloakOpenIDConnection(
            server_url=url, username="admin", password=password, realm_name="master", user_realm_name="master",
            verify=True, timeout=30))
        admin.get_realms()
        return admin
    except KeycloakError as e:
        raise SandboxError(f"Keycloak at {url} refused the sandbox's admin login ({e.response_code}).",
                           "check `sandbox status`; if Keycloak was reset, run `sandbox down` and `sandbox up`.") from e
