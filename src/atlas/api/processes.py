"""Several server processes on one port (``atlas serve --processes N``).

Each process listens on its own socket bound with ``SO_REUSEPORT``, and the
kernel spreads new connections evenly across them. (uvicorn's own workers share
one listening socket, and whichever process is free takes every connection
waiting: clients that keep their connections open, browsers and API pools, can
then end up mostly on one process while another idles. Measured with 50 clients
on 2 processes: 121 to 291 requests a second from one run to the next.)

The parent starts the processes, starts again one that dies, and stops them all
on Ctrl-C or SIGTERM (each finishes its requests and closes its library). A
process that fails while starting (the app cannot be built, the port is taken)
would fail again: the parent then stops and says so.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from typing import Any

from atlas.errors import InvalidInput, Unavailable

__all__ = ["can_share_port", "serve_processes"]

log = logging.getLogger(__name__)

#: How long stopping processes get to finish their requests before they are killed.
STOP_GRACE_S = 30.0
_APP = "atlas.api.app:app_from_environment"


def can_share_port() -> bool:
    """Whether this system lets several processes listen on one port (``SO_REUSEPORT``)."""
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` that other processes may bind as well."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot listen on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve_processes(count: int, host: str, port: int, options: dict[str, Any]) -> int:
    """Run ``count`` server processes on ``host:port`` until a signal stops them.

    ``options``: uvicorn's settings for each (log level, keep-alive). Each process
    builds its app with :func:`atlas.api.app.app_from_environment`, whose setup it
    inherits from this process's environment. Returns the exit status: 0 when
    stopped by a signal, 1 when a process failed to start.
    """
    listening_socket(host, port).close()  # a taken port or a bad address: one line, now
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }

    def start() -> tuple[Any, Any]:
        ready = context.Event()
        child = context.Process(target=_serve, args=(host, port, options, ready), daemon=False)
        child.start()
        return child, ready

    children = [start() for _ in range(count)]
    failed = False
    try:
        while not stop.wait(0.5):
            for slot, (child, ready) in enumerate(children):
                if child.is_alive():
                    continue
                if not ready.is_set():
                    log.error(
                        "atlas serve: a server process failed to start (exit %s); stopping",
                        child.exitcode,
                    )
                    failed = True
                    stop.set()
                    break
                log.warning("atlas serve: server process %s died; starting another", child.pid)
                children[slot] = start()
    finally:
        _stop_all([child for child, _ in children])
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


def _stop_all(children: list[Any]) -> None:
    for child in children:
        if child.is_alive():
            with contextlib.suppress(OSError):
                child.terminate()  # SIGTERM: uvicorn finishes its requests, the app closes
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()


def _serve(host: str, port: int, options: dict[str, Any], ready: Any) -> None:
    """One server process: its own socket on the shared port, the app, uvicorn;
    ``ready`` is set once it takes connections."""
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(_APP, factory=True, host=host, port=port, **options)
    server = uvicorn.Server(config)

    parent = os.getppid()

    def watch() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        if server.started:
            ready.set()
        # A parent killed outright (kill -9) cannot stop its processes: each stops
        # itself once its parent is gone, so none keeps the port.
        while not server.should_exit:
            if os.getppid() != parent:
                server.should_exit = True
            time.sleep(1.0)

    threading.Thread(target=watch, name="atlas-serve-ready", daemon=True).start()
    server.run(sockets=[sock])
