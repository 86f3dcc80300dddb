"""Who may talk to ``atlas serve``: the token, the page session, cross-site requests, body size.

Bound to a loopback address, the server needs no token; bound to any other
address it needs one. API clients send it as ``Authorization: Bearer TOKEN``;
pages hold it in an http-only, same-site cookie set by ``/login``. Every
state-changing request from a page carries the page's CSRF token in the
``X-CSRF-Token`` header (the same value as its http-only ``atlas_csrf``
cookie), and a request from another site is refused whatever it carries.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "MAX_BODY_BYTES",
    "SESSION_COOKIE",
    "BodyLimit",
    "Guard",
    "Security",
    "is_loopback",
    "new_token",
]

SESSION_COOKIE = "atlas_session"
CSRF_COOKIE = "atlas_csrf"
CSRF_HEADER = "x-csrf-token"
#: The largest request body accepted (a description may be 100,000 characters).
MAX_BODY_BYTES = 1_000_000
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Reachable without a session: the login page and the files it needs.
_OPEN_PREFIXES = ("/login", "/static/")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh random API token (256 bits)."""
    return secrets.token_urlsafe(32)


def error(status: int, message: str) -> JSONResponse:
    """The JSON error every failure of the API answers with."""
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(
        str(given).encode(), str(expected).encode()
    )


@dataclass(frozen=True)
class Security:
    """The token the server requires (``None``: none, loopback only)."""

    token: str | None = None

    def bearer(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def authorised(self, request: Request) -> bool:
        if self.token is None:
            return True
        return _same(self.bearer(request), self.token) or _same(
            request.cookies.get(SESSION_COOKIE), self.token
        )

    def check_token(self, given: str) -> bool:
        return self.token is None or _same(given.strip(), self.token)

    def cross_site(self, request: Request) -> bool:
        """A browser says the request comes from a page of another site."""
        if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return True
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin == "null"
        return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()

    def refuse(self, request: Request) -> Response | None:
        """The answer that refuses ``request``, or ``None`` to let it through."""
        path = request.url.path
        api = path.startswith("/api/")
        if not path.startswith(_OPEN_PREFIXES) and not self.authorised(request):
            if api or path in ("/openapi.json", "/docs"):
                return error(401, "a valid API token is required (Authorization: Bearer TOKEN)")
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if request.method not in _UNSAFE:
            return None
        if self.cross_site(request):
            return error(403, "cross-site request refused")
        if self.token is not None and _same(self.bearer(request), self.token):
            return None  # an API client with the token: no browser, no CSRF
        csrf_cookie = request.cookies.get(CSRF_COOKIE)
        # A browser that holds a page of Atlas: the page's token must come along.
        browser = csrf_cookie is not None or request.cookies.get(SESSION_COOKIE) is not None
        if (
            browser
            and not path.startswith("/login")
            and not _same(request.headers.get(CSRF_HEADER), csrf_cookie)
        ):
            return error(403, "missing or wrong CSRF token; reload the page")
        if api:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = request.headers.get("content-length", "0") not in ("", "0")
            if has_body and kind != "application/json":
                return error(415, "the request body must be JSON (Content-Type: application/json)")
        return None


class Guard:
    """ASGI middleware: a request ``Security.refuse`` refuses is answered before any route.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs every
    request through an extra task and a memory stream (a measurable share of a
    cheap request's CPU time under load).
    """

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.security.refuse(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is refused with 413 before any route runs."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = True
            if too_big:
                await self._refuse(scope, receive, send)
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error(413, f"the request body is larger than {self.limit:,} bytes")
        await response(scope, receive, send)


def cookie_options(**extra: Any) -> dict[str, Any]:
    """How Atlas sets its cookies: http-only, same-site strict, the whole site."""
    return {"httponly": True, "samesite": "strict", "path": "/", **extra}
