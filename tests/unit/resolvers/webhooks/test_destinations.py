"""Which addresses count as inside the operator's network, and which URLs a webhook may have."""

from __future__ import annotations

import ipaddress

import pytest

from resolvers.webhooks.destinations import (
    FORBIDDEN_DESTINATION,
    INSECURE_URL,
    INVALID_URL,
    DestinationPolicy,
    DestinationRefused,
    is_internal,
    parse,
    resolve,
)

LOOPBACK = DestinationPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),), allow_http_on_loopback=True)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:192.168.1.1",
        "::",
    ],
)
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


def test_a_url_needs_https_unless_the_operator_allows_http_to_loopback() -> None:
    with pytest.raises(DestinationRefused) as refused:
        parse("http://example.org/hook", DestinationPolicy())
    assert refused.value.code == INSECURE_URL
    assert parse("https://example.org/hook", DestinationPolicy()) == ("https", "example.org", 443)
    assert parse("http://127.0.0.1:8080/x", LOOPBACK) == ("http", "127.0.0.1", 8080)


@pytest.mark.parametrize(
    "url", ["example.org/hook", "https:///nohost", "https://a:b@example.org/", "https://example.org:99999/", "x" * 3000]
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        parse(url, DestinationPolicy())
    assert refused.value.code == INVALID_URL


async def test_allowed_networks_open_only_themselves_and_http_only_to_loopback() -> None:
    assert (await resolve("http://127.0.0.1:9/x", LOOPBACK)).addresses == (ipaddress.ip_address("127.0.0.1"),)
    with pytest.raises(DestinationRefused) as refused:
        await resolve("https://10.0.0.1/x", LOOPBACK)
    assert refused.value.code == FORBIDDEN_DESTINATION
    private = DestinationPolicy(allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),), allow_http_on_loopback=True)
    with pytest.raises(DestinationRefused) as insecure:
        await resolve("http://10.0.0.1/x", private)
    assert insecure.value.code == INSECURE_URL
    assert (await resolve("https://10.0.0.1/x", private)).port == 443
