"""The page's HTTP server (Starlette on uvicorn), on 127.0.0.1 only.

Protection, as notebook servers do it: a per-sandbox token, handed over once (`sandbox ui` opens a 0600 file
that posts it to /login; `sandbox ui --url` prints a link with it), then kept in an HttpOnly, SameSite=Strict cookie
named for the port and set for the page's own host name (`sandbox.localhost`, which no other component answers
to: cookies ignore ports, and one set for 127.0.0.1 would reach every local service). An API client sends it as
`X-Sandbox-Token`. Every request must name this server as its Host (no DNS rebinding) before anything else is
looked at, and a request that carries an Origin must come from this page: a foreign site can neither read nor
start anything, nor frame the page. `/healthz` alone answers without the token, and says nothing but "ok". Every
asset is served from the package: the page works with no internet. The vault's root token is never served.

    python -m sandbox.ui.server --home HOME --port PORT [--spec FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import threading
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from sandbox.errors import SandboxError
from sandbox.host.ports import HOST
from sandbox.paths import SandboxPaths
from sandbox.stack import page as lifecycle
from sandbox.ui.hub import Hub

ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}
SAFE = ("GET", "HEAD")
MAX_SNAPSHOT = 4 * 1024 * 1024  # bytes: a snapshot of a large spec is tens of kilobytes
# on every answer: nothing but the page's own files runs or loads, no other site frames it, no type is guessed, and
# no address (a link's token) leaves in a Referer
HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _asset(name: str) -> str:
    return resources.files("sandbox.ui").joinpath("static", name).read_text()


class Guard:
    """Which requests may pass: the token, this server's own Host and Origin."""

    def __init__(self, token: str, port: int):
        if len(token) < lifecycle.MIN_TOKEN_LENGTH:  # an empty token would match an empty header
            raise ValueError("the page's token is too short to guard anything")
        self.token, self.port = token, port
        self.cookie = f"sandbox_ui_{port}"
        self.page = f"{lifecycle.PAGE_HOST}:{port}"
        # the sandbox's own calls and a typed address arrive as these; a browser is sent on to the page's name
        self.loopback = {f"{HOST}:{port}", f"localhost:{port}"}
        self.hosts = {self.page, *self.loopback}
        self.origins = {f"http://{self.page}"}

    def matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _has_token(self, request: Request) -> bool:
        return self.matches(request.headers.get("x-sandbox-token") or request.cookies.get(self.cookie) or "")

    def wrong_host(self, request: Request) -> Response | None:
        if request.headers.get("host", "") not in self.hosts:
            return PlainTextResponse(f"This server answers only as {lifecycle.PAGE_HOST}, 127.0.0.1 or localhost.",
                                     403)
        return None

    def refuse(self, request: Request) -> Response | None:
        origin = request.headers.get("origin")
        if origin is not None and origin not in self.origins:
            return _error(403, f"A request from {origin} is refused: only this page may call this server.",
                          "open the page itself (`sandbox ui`).")
        if request.method not in SAFE and origin is None and not request.headers.get("x-sandbox-token"):
            return _error(403, "A change needs the page's Origin or the X-Sandbox-Token header.",
                          "use the page's buttons, or send X-Sandbox-Token.")
        if not self._has_token(request):
            if request.url.path.startswith("/api/"):
                return _error(401, "This sandbox's page needs its token.", "run `sandbox ui --url` for the link.")
            return HTMLResponse(NEEDS_TOKEN, 401)
        return None


NEEDS_TOKEN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>airflow-tyk-sandbox</title>
<link rel="icon" href="/favicon.svg"></head>
<body><h1>This sandbox's page needs its token</h1><p>Run <code>sandbox ui</code> (or <code>sandbox ui --url</code>)
to open it with its link.</p></body></html>"""


def _error(status: int, message: str, fix: str) -> JSONResponse:
    return JSONResponse({"error": message, "fix": fix}, status)


def build(paths: SandboxPaths, port: int, spec_path: Path | None, hub: Hub | None = None) -> Starlette:
    hub = hub or Hub(paths, spec_path)
    guard = Guard(lifecycle.token(paths), port)

    def enter(given: str, rest: dict[str, str]) -> Response:
        """The token into a cookie of the page's own host, then on to the page. An answer of its own rather than
        a redirect: a page the browser was sent to from a file (`sandbox ui`) is a cross-site start, and a Strict
        cookie goes with no request of that chain; the refresh below starts from the page itself."""
        if not guard.matches(given):
            return HTMLResponse(NEEDS_TOKEN, 401)
        where = "/" + (f"?{urlencode(rest)}" if rest else "")
        response = HTMLResponse(ENTERING.format(where=where), headers={"Cache-Control": "no-store"})
        response.set_cookie(guard.cookie, guard.token, httponly=True, samesite="strict", path="/")
        return response

    async def index(request: Request) -> Response:
        if request.headers.get("host") in guard.loopback:  # the cookie is the page name's alone: go there first
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"http://{guard.page}/{query}", 307)
        given = request.query_params.get("token")
        if given is not None:  # the link's token: into the cookie, out of the address bar
            return enter(given, {k: v for k, v in request.query_params.items() if k != "token"})
        if (refused := guard.refuse(request)) is not None:
            return refused
        return HTMLResponse(_asset("index.html"), headers={"Cache-Control": "no-store"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("not found", 404)
        return Response(_asset(name), media_type=ASSETS[name])

    async def login(request: Request) -> Response:
        if request.headers.get("host") != guard.page:
            return _error(403, f"The token is taken only at {lifecycle.url(port)}.", "run `sandbox ui`.")
        body = (await request.body())[:4096].decode("utf-8", "replace")  # urlencoded: one short field
        return enter((parse_qs(body).get("token") or [""])[0], {})

    async def favicon(request: Request) -> Response:
        return Response(_asset("favicon.svg"), media_type=ASSETS["favicon.svg"])

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    def guarded(handler):
        async def wrapped(request: Request) -> Response:
            if (refused := guard.refuse(request)) is not None:
                return refused
            return await handler(request)

        return wrapped

    async def state(request: Request) -> Response:
        _, text = await asyncio.to_thread(hub.look, 10.0)
        return Response(text or "{}", media_type="application/json")

    async def events(request: Request) -> Response:
        async def stream():
            seen = 0  # version 0: no snapshot yet; the first one is sent as soon as it exists
            while not await request.is_disconnected():
                version, text = await asyncio.to_thread(hub.wait_change, seen, 10.0)
                if version != seen and text:
                    seen = version
                    yield f"data: {text}\n\n"
                else:
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def reveal(request: Request) -> Response:
        name = request.path_params["name"]
        rows = {r.name: r for r in await asyncio.to_thread(hub.runtime().status)}
        if name in rows and rows[name].secret_elsewhere:  # the vault's root token opens every secret: never here
            return _error(403, f"The page does not show {name}'s secret.", rows[name].secret_elsewhere)
        if name not in rows or not rows[name].secret:
            return _error(404, f"{name} has no login secret.", "pick a component with a login.")
        return JSONResponse({"name": name, "secret": rows[name].secret}, headers={"Cache-Control": "no-store"})

    def job(kind: str, work) -> Response:
        started = hub.start(kind, "", work)
        return JSONResponse(started, 409 if "refused" in started else 202)

    async def run_smoke(request: Request) -> Response:
        return job("smoke", hub.do_smoke)

    async def run_doctor(request: Request) -> Response:
        return job("doctor", hub.do_doctor)

    async def run_repro(request: Request) -> Response:
        name = request.path_params["name"]
        from sandbox.scenarios import CATALOGUE

        if name not in CATALOGUE:
            return _error(404, f"No scenario named {name!r}.", f"use one of: {', '.join(CATALOGUE)}.")
        started = hub.start("repro", name, lambda say: hub.do_repro(name, say))
        return JSONResponse(started, 409 if "refused" in started else 202)

    async def run_revert(request: Request) -> Response:
        return job("revert", hub.do_revert)

    async def run_compare(request: Request) -> Response:
        from sandbox.commands import snapshot

        told = request.headers.get("content-length", "")
        body = b"" if told.isdigit() and int(told) > MAX_SNAPSHOT else await request.body()
        if len(body) > MAX_SNAPSHOT or not body and told.isdigit() and int(told) > MAX_SNAPSHOT:
            return _error(413, f"The file has {told or len(body)} bytes; a snapshot has far fewer than {MAX_SNAPSHOT}.",
                          "drop a file `sandbox snapshot FILE` wrote.")
        name = "".join(c for c in request.query_params.get("name", "")[:80] if c.isprintable())
        try:
            other = snapshot.load(body.decode("utf-8", "replace"), name or "the dropped file")
        except SandboxError as e:
            return _error(400, e.message, e.fix)
        started = hub.start("compare", name, lambda say: hub.do_compare(other, say))
        return JSONResponse(started, 409 if "refused" in started else 202)

    routes = [
        Route("/", index), Route("/login", login, methods=["POST"]), Route("/healthz", healthz),
        Route("/favicon.svg", favicon), Route("/static/{name}", guarded(asset)),
        Route("/api/state", guarded(state)), Route("/api/events", guarded(events)),
        Route("/api/secret/{name}", guarded(reveal)),
        Route("/api/smoke", guarded(run_smoke), methods=["POST"]),
        Route("/api/doctor", guarded(run_doctor), methods=["POST"]),
        Route("/api/repro/{name}", guarded(run_repro), methods=["POST"]),
        Route("/api/revert", guarded(run_revert), methods=["POST"]),
        Route("/api/compare", guarded(run_compare), methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(HostFirst, guard=guard)])
    app.state.hub = hub
    return app


class HostFirst:
    """The Host check before any route (the token link's included), and the protective headers on every answer."""

    def __init__(self, app, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(HEADERS)
            await send(message)

        refused = self.guard.wrong_host(Request(scope))
        await (refused or self.app)(scope, receive, with_headers)


ENTERING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>airflow-tyk-sandbox</title>
<meta http-equiv="refresh" content="0;url={where}"><link rel="icon" href="/favicon.svg"></head>
<body><p>Opening the sandbox's page… <a href="{where}">open it</a></p></body></html>"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--spec", type=Path, default=None)
    args = ap.parse_args()
    import uvicorn

    paths = SandboxPaths.resolve(args.home)
    hub = Hub(paths, args.spec)
    threading.Thread(target=hub.loop, daemon=True, name="refresh").start()
    uvicorn.run(build(paths, args.port, args.spec, hub), host=HOST, port=args.port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()

