"""A loopback port of a container forwarded to another service of the stack: `python -m sandbox_forward
PORT=HOST:PORT` (the image's entry point starts it when SANDBOX_LOOPBACK_FORWARD says so).

Why: Keycloak's issuer is the URL the host uses (http://127.0.0.1:<port>), and Airflow's Keycloak auth manager
reaches Keycloak at that very URL (its `server_url` is also the browser's, and must equal the tokens' issuer). In a
container or a pod 127.0.0.1 is the container itself: this makes the host's URL work there too. It carries bytes
only; it is no proxy in front of the gateway."""

from __future__ import annotations

import socket
import sys
import threading


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(port: int, target: tuple[str, int]) -> None:
    listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def main() -> None:
    listen, _, target = sys.argv[1].partition("=")
    host, _, port = target.rpartition(":")
    serve(int(listen), (host, int(port)))


if __name__ == "__main__":
    main()
