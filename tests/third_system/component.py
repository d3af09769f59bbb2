"""A stand-in OIDC provider: one Python process serving a discovery document, described as every system is."""

from __future__ import annotations

import sys
from pathlib import Path

from sandbox.host.provision import Say
from sandbox.host.readiness import Check, http_ok
from sandbox.runtime.component import Component, ComponentContext, ProcessSpec

SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[1])
issuer = f"http://127.0.0.1:{port}/"


class Discovery(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/.well-known/openid-configuration":
            self.send_error(404)
            return
        body = json.dumps({"issuer": issuer, "token_endpoint": issuer + "oauth2/token",
                           "jwks_uri": issuer + ".well-known/jwks.json"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", port), Discovery).serve_forever()
"""


class ThirdIdp(Component):
    name = "thirdidp"
    default_ports = {"thirdidp": 29871}
    start_timeout = 20.0

    def provisioned(self, cache: Path) -> bool:
        return True  # nothing to fetch: the interpreter that runs the sandbox runs it

    def provision(self, cache: Path, say: Say) -> None:
        say("nothing to provision")

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        return [ProcessSpec("thirdidp", [sys.executable, "-c", SERVER, str(ctx.ports["thirdidp"])])]

    def health(self, ctx: ComponentContext) -> Check:
        return http_ok(f"{self.url(ctx)}/.well-known/openid-configuration")
