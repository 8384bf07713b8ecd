"""The outbound address policy (core/addresses.py): what the http handler and webhooks may reach."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.addresses import AddressRefused, check_address, embedded_ipv4

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111"]
PRIVATE = [
    ("127.0.0.1", "loopback"), ("127.5.6.7", "loopback"), ("::1", "loopback"), ("0.0.0.0", "loopback"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"), ("100.64.0.1", "non-public"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("64:ff9b::a00:1", "private"), ("2002:7f00:1::", "loopback"),
]  # fmt: skip
METADATA = ["169.254.169.254", "fd00:ec2::254", "169.254.170.2", "::ffff:169.254.169.254", "100.100.100.200"]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_reached(address: str) -> None:
    check_address("example.com", address, allow_private=False)


@pytest.mark.parametrize(("address", "kind"), PRIVATE)
def test_private_addresses_are_refused_unless_allowed(address: str, kind: str) -> None:
    with pytest.raises(AddressRefused, match=kind) as refused:
        check_address("internal.example", address, allow_private=False)
    assert refused.value.allowed_by_setting
    assert "BATCHYARD_ALLOW_PRIVATE_URLS" in str(refused.value)
    check_address("internal.example", address, allow_private=True)


@pytest.mark.parametrize("address", METADATA)
def test_cloud_metadata_is_refused_always(address: str) -> None:
    for allow in (False, True):
        with pytest.raises(AddressRefused, match="cloud metadata") as refused:
            check_address("metadata", address, allow_private=allow, allowed_networks=["0.0.0.0/0", "::/0"])
        assert not refused.value.allowed_by_setting
        assert "refused always" in str(refused.value)


def test_allowed_networks_open_only_themselves() -> None:
    check_address("db", "10.1.2.3", allow_private=False, allowed_networks=["10.1.0.0/16"])
    with pytest.raises(AddressRefused, match="private"):
        check_address("db", "10.2.0.1", allow_private=False, allowed_networks=["10.1.0.0/16"])


def test_multicast_and_garbage_are_refused_always() -> None:
    for address in ("224.0.0.1", "ff02::1", "255.255.255.255", "not-an-ip"):
        with pytest.raises(AddressRefused):
            check_address("x", address, allow_private=True)


def test_the_message_names_the_host_and_its_address() -> None:
    with pytest.raises(AddressRefused) as refused:
        check_address("localhost", "127.0.0.1", allow_private=False)
    assert "localhost (127.0.0.1)" in str(refused.value) and "loopback" in str(refused.value)


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_ipv6_mapped_form_get_the_same_verdict(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert embedded_ipv4(mapped) == address
    verdicts: list[str | None] = []
    for form in (str(address), str(mapped)):
        try:
            check_address("h", form, allow_private=False)
            verdicts.append(None)
        except AddressRefused as refused:
            verdicts.append(refused.reason)
    assert verdicts[0] == verdicts[1]
