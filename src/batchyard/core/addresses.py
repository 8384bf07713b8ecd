"""Which network addresses outbound requests may reach (the ``http`` handler; webhooks). Pure: no DNS, no I/O.

The check runs on the addresses a host name resolved to, right before connecting to one of them (see
``batchyard.outbound.guard``): checking the name, or resolving twice, would let DNS rebinding slip past it.

- Cloud metadata endpoints (169.254.169.254 and friends, ``fd00:ec2::254``) are refused always: they hand out
  credentials to anything on the machine that asks.
- Loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local, carrier-grade NAT, unspecified and every
  other non-global address are refused unless the operator allows private targets
  (``BATCHYARD_ALLOW_PRIVATE_URLS=true``).
- Multicast and broadcast are refused always (nothing to connect to).
IPv6 forms that carry an IPv4 address (``::ffff:a.b.c.d``, 6to4, NAT64 ``64:ff9b::/96``) are judged by it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CLOUD_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ... instance metadata
        "169.254.169.253",  # AWS VPC DNS
        "169.254.169.123",  # AWS time sync
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS pod identity agent
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity agent over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure wire server
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """An outbound request would reach an address the policy refuses."""

    def __init__(self, host: str, address: str, reason: str, *, allowed_by_setting: bool) -> None:
        how = (
            " (set BATCHYARD_ALLOW_PRIVATE_URLS=true to allow private targets)"
            if allowed_by_setting
            else " (refused always)"
        )
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"refused to connect to {shown}: {reason} address{how}")
        self.host = host
        self.address = address
        self.reason = reason
        self.allowed_by_setting = allowed_by_setting


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), else None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress, *, allow_private: bool) -> tuple[str, bool] | None:
    """Why ``address`` may not be reached, with whether the setting would allow it; None when it may."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return refusal_reason(inner, allow_private=allow_private)
    if address in CLOUD_METADATA_ADDRESSES:
        return "a cloud metadata", False
    if address.is_multicast or (isinstance(address, ipaddress.IPv4Address) and address == _BROADCAST):
        return "a multicast or broadcast", False
    if allow_private or address.is_global:
        return None
    if address.is_loopback or address.is_unspecified:
        return "a loopback", True
    if address.is_link_local:
        return "a link-local", True
    if address.is_private:
        return "a private", True
    return "a non-public", True  # carrier-grade NAT, reserved, documentation ranges


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def check_address(host: str, address: str, *, allow_private: bool, allowed_networks: Sequence[str] = ()) -> None:
    """Raise :class:`AddressRefused` if ``address`` (an IP, as resolved for ``host``) may not be reached.
    ``allowed_networks`` (CIDR) are reachable even when private targets are not (metadata addresses never are)."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id (fe80::1%eth0) is not the address
    except ValueError:
        raise AddressRefused(host, address, "an unreadable", allowed_by_setting=False) from None
    allowed = allow_private or any(parsed in _network(n) for n in allowed_networks)
    refused = refusal_reason(parsed, allow_private=allowed)
    if refused is not None:
        reason, by_setting = refused
        raise AddressRefused(host, address, reason, allowed_by_setting=by_setting)


@functools.lru_cache(maxsize=256)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)
