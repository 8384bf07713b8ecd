"""Security headers on every response, as plain ASGI middleware (so error answers and streams get them too).

- Every response: ``X-Content-Type-Options: nosniff`` (a browser never guesses a JSON or CSV download is HTML)
  and ``Referrer-Policy: no-referrer`` (the login link carries a token; no URL of ours goes to another site).
- HTML pages: a Content-Security-Policy that allows only the server's own scripts, and no framing
  (``frame-ancestors 'none'``, and ``X-Frame-Options: DENY`` for old browsers). The API docs (``/docs``,
  ``/redoc``) load their assets from this server too (``DOCS_ASSETS_URL``); Swagger UI starts with an inline
  script and ReDoc searches in a worker made from a ``blob:`` URL, so their pages, and only those, allow that.
- Answers under ``/api/``, ``/v1/`` and ``/login`` are ``Cache-Control: no-store`` unless the route chose
  otherwise: they carry new keys, session cookies, CSRF tokens and owners' data, which no browser or proxy cache
  should keep.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
DOCS_ASSETS_URL = "/docs-assets"
NO_STORE_PREFIXES = ("/api/", "/v1/", "/login")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault(
                        "Content-Security-Policy", DOCS_POLICY if path.startswith(DOCS_PATHS) else PAGE_POLICY
                    )
                    headers.setdefault("X-Frame-Options", "DENY")
                if path.startswith(NO_STORE_PREFIXES):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
