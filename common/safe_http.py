"""Outbound HTTP to customer-chosen URLs, checked against SSRF when connecting.

A URL was checked when saved, but its host may resolve elsewhere by now (DNS rebinding). So the
check runs on the very address each socket is about to connect to: the connector's socket factory
refuses any address that is not public. That covers host names and IP literals alike (aiohttp
does not ask a resolver for the latter) and every address happy eyeballs tries.
"""

from __future__ import annotations

import errno
import socket

import aiohttp
from aiohappyeyeballs import AddrInfoType

from common.targets import is_public_address


class PrivateAddressRefused(OSError):
    """The target resolved to an address callbacks may not reach."""

    def __init__(self, address: str):
        # With an errno, aiohttp's connection error shows the reason rather than "[None]".
        super().__init__(errno.EACCES, f"refused to connect to non-public address {address}")


def public_only_socket(addr_info: AddrInfoType) -> socket.socket:
    """A socket for ``addr_info`` if its address is public; raising here fails that connection."""
    family, type_, proto, _, address = addr_info
    if not is_public_address(str(address[0])):
        raise PrivateAddressRefused(str(address[0]))
    return socket.socket(family=family, type=type_, proto=proto)


def outbound_session(*, allow_private: bool, timeout_seconds: float,
                     resolver: aiohttp.abc.AbstractResolver | None = None) -> aiohttp.ClientSession:
    """A session for customer URLs: every address checked unless ``allow_private``, no proxy from
    the environment, a total timeout per request, no cookies kept between customers."""
    connector = aiohttp.TCPConnector(socket_factory=None if allow_private else public_only_socket,
                                     resolver=resolver, limit=100)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_seconds),
                                 cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
