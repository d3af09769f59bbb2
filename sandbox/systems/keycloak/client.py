"""Keycloak's admin client: the master realm's admin, logged in. (A realm's OIDC URLs are plan's: pure shapes.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.errors import SandboxError

if TYPE_CHECKING:  # the library takes half a second to load: only commands that talk to Keycloak load it
    from keycloak import KeycloakAdmin


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
