"""The address guard for outbound requests to URLs that users choose (the ``http`` handler; webhooks).

The policy is ``core/addresses.py``; this applies it where it cannot be dodged:

- :class:`GuardedResolver` is the session's DNS resolver: it resolves a name once and keeps only the addresses
  the policy allows, so the connection goes to an address that was checked (no second lookup an attacker's DNS
  could answer differently: DNS rebinding). A name with no allowed address raises
  :class:`~batchyard.core.addresses.AddressRefused`.
- aiohttp does not ask the resolver about IP literals, so :func:`check_url` checks those (and the scheme) before
  every request, and on every redirect: callers follow redirects themselves (``allow_redirects=False``).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from batchyard.core.addresses import AddressRefused, check_address

ALLOWED_SCHEMES = ("http", "https")


class URLRefused(Exception):
    """A URL the guard will not fetch for a reason other than its address (scheme, no host)."""


class GuardedResolver(AbstractResolver):
    """Resolves with the system resolver, then drops every address the policy refuses."""

    def __init__(self, *, allow_private: bool, allowed_networks: Sequence[str] = ()) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private
        self._allowed_networks = tuple(allowed_networks)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        shown = host.rstrip(".")
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        first_refusal: AddressRefused | None = None
        for result in results:
            try:
                check_address(
                    shown, result["host"], allow_private=self._allow_private, allowed_networks=self._allowed_networks
                )
            except AddressRefused as refused:
                first_refusal = first_refusal or refused
            else:
                allowed.append(result)
        if not allowed:
            if first_refusal is not None:
                raise first_refusal
            raise OSError(f"{shown} has no address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, *, allow_private: bool, allowed_networks: Sequence[str] = ()) -> None:
    """Refuse a URL that is not http(s), has no host, or names an IP the policy refuses (names are checked by
    the resolver, after resolution)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here, not deep in the client
    except ValueError as exc:
        raise URLRefused(f"{url[:200]!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise URLRefused(f"{url[:200]!r}: only http and https URLs are fetched")
    if not host:
        raise URLRefused(f"{url[:200]!r} has no host")
    if _is_ip(host):
        check_address(host, host, allow_private=allow_private, allowed_networks=allowed_networks)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
