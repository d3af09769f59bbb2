"""The most common identity bug of a stack in containers: Keycloak reached under two names."""

from __future__ import annotations

from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom

IDP = ("keycloak", "keycloak")


class ContainerVsHostIssuer(Scenario):
    name = "container-vs-host-issuer"
    story = ("Keycloak runs in a container without a fixed hostname. From the laptop, tokens fetched at "
             "127.0.0.1:<port> pass the gateway, and so does every curl anyone tries. Airflow's tasks, inside the "
             "container network, fetch theirs at keycloak:8080, and every call they make is refused.")
    cause = ("without a fixed hostname Keycloak writes into `iss` the address each token request came to: "
             "http://keycloak:8080/realms/dev inside the network, the host's URL outside; the gateway trusts one")
    fix = ("fix Keycloak's hostname to the URL the host uses (KC_HOSTNAME, or --hostname), so every token carries "
           "one issuer wherever it was fetched; the sandbox sets it")
    expected = Symptom("gateway", 401, "Key not authorized: invalid issuer claim", "failed at gateway: HTTP 401")
    doctor_says = "Keycloak's hostname is not fixed"
    differs = ("connections.*.token.iss",)
    runtimes = ("docker",)
    needs = ("the docker runtime: on the local runtime every component reaches Keycloak at the host's address, so "
             "there is no second name")

    def inject(self, ctx: ScenarioContext) -> None:
        # Keycloak treats an empty value as unset; with strict hostnames off, `iss` then follows each request
        ctx.runtime.restart(*IDP, {"KC_HOSTNAME": ""})

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*IDP, {})
