"""Where a webhook may point: HTTPS to an address outside the operator's network.

A URL is checked when it is registered and again before every attempt: its host is
resolved and every address must be public (not loopback, private, link-local, shared,
multicast or reserved) unless it lies in a network the operator allows. The attempt then
connects to the very address that passed (the name is kept for Host and TLS), so a DNS
answer that changes between the check and the connection (rebinding) cannot redirect it.
Plain ``http`` is accepted only to loopback addresses, and only when the operator says so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048

INVALID_URL = "INVALID_URL"
INSECURE_URL = "INSECURE_URL"
FORBIDDEN_DESTINATION = "FORBIDDEN_DESTINATION"
UNRESOLVABLE_HOST = "UNRESOLVABLE_HOST"


class DestinationRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DestinationPolicy:
    #: internal networks the operator lets webhooks reach anyway (``127.0.0.0/8`` for tests)
    allowed_networks: tuple[IPNetwork, ...] = ()
    #: plain http to a loopback address (never to anything else)
    allow_http_on_loopback: bool = False

    def permits(self, address: IPAddress) -> bool:
        return not is_internal(address) or any(address in network for network in self.allowed_networks)


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    #: the addresses that passed the check: an attempt connects to the first
    addresses: tuple[IPAddress, ...]


def is_internal(address: IPAddress) -> bool:
    """Inside some network rather than on the public Internet (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def parse(url: str, policy: DestinationPolicy) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL a webhook may have; DestinationRefused otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(INVALID_URL, f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise DestinationRefused(INVALID_URL, "the URL is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise DestinationRefused(INVALID_URL, "the URL must be absolute: https://host/path")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused(INVALID_URL, "the URL must not carry credentials")
    if scheme == "http" and not policy.allow_http_on_loopback:
        raise DestinationRefused(INSECURE_URL, "the URL must use https")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


async def resolve(url: str, policy: DestinationPolicy) -> Destination:
    """Check ``url`` and its addresses now; DestinationRefused with a code when it may not be used."""
    scheme, host, port = parse(url, policy)
    addresses = await _addresses(host, port)
    refused = [address for address in addresses if not policy.permits(address)]
    if refused:
        raise DestinationRefused(
            FORBIDDEN_DESTINATION, f"{host} resolves to {refused[0]}, inside the operator's network (loopback, private or link-local)"
        )
    if scheme == "http" and not all(address.is_loopback for address in addresses):
        raise DestinationRefused(INSECURE_URL, "the URL must use https (plain http is allowed only to loopback addresses)")
    return Destination(scheme, host, port, tuple(addresses))


async def _addresses(host: str, port: int) -> Sequence[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise DestinationRefused(UNRESOLVABLE_HOST, f"{host} does not resolve") from None
    found = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not found:
        raise DestinationRefused(UNRESOLVABLE_HOST, f"{host} does not resolve")
    return found
