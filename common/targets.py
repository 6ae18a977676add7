"""Outbound targets (callback and Slack URLs, email addresses): validated when saved and, for
URLs, checked again when connecting (``sinks``), so DNS rebinding cannot reach a private address.

Private, loopback, link-local, CGNAT, multicast, reserved and unspecified addresses (IPv4 and IPv6,
including IPv4-mapped IPv6) are refused unless ``SENDPROMPTLY_ALLOW_PRIVATE_TARGETS=1``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"  # local part
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"  # first label of the domain
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"  # one or more further labels
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# ``check_url_syntax`` as far as a pattern says it (for JSON Schema): http(s) (the scheme is
# case-insensitive), a host, no user:password@, no #fragment, nothing but printable characters
# other than whitespace.
_URL_REST = r"://[^\s\x00-\x1f\x7f-\x9f/?#@]+(?:[/?][^\s\x00-\x1f\x7f-\x9f#]*)?$"
HTTP_URL = "^[Hh][Tt][Tt][Pp][Ss]?" + _URL_REST
URL_SCHEMA = {"minLength": 1, "maxLength": MAX_URL_CHARS, "pattern": HTTP_URL}


class TargetError(ValueError):
    """The target is not acceptable; the message says why, for the operator."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local or ip.is_loopback:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global


def check_url_syntax(url: str, *, require_https: bool) -> str:
    """Scheme, host, no credentials; returns the URL unchanged when it passes."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise TargetError(f"must be a URL of at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise TargetError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"is not a valid URL ({exc})") from None
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed:
        raise TargetError("must use https://" if require_https else "must use http:// or https://")
    if not parts.hostname:
        raise TargetError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetError("must not contain credentials (user:password@); "
                          "authenticate with the signature instead")
    if parts.fragment:
        raise TargetError("must not contain a #fragment")
    del port
    return url


async def resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetError(f"host {host!r} does not resolve ({exc.strerror})") from None
    except UnicodeError:  # IDNA refuses empty or over-long labels and some characters
        raise TargetError(f"host {host!r} is not a valid host name") from None
    # info[4] is the socket address; for the AF_INET and AF_INET6 a host name resolves to, [0] is the
    # address text (typeshed also allows the int of other families).
    return sorted({str(info[4][0]) for info in infos})


async def check_url(url: str, *, require_https: bool, allow_private: bool) -> str:
    """Full check for saving a URL: syntax, then every address the host resolves to."""
    check_url_syntax(url, require_https=require_https)
    if allow_private:
        return url
    parts = urlsplit(url)
    assert parts.hostname is not None  # noqa: S101 (check_url_syntax refused a URL without a host)
    addresses = await resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    private = [a for a in addresses if not is_public_address(a)]
    if private:
        raise TargetError(
            f"resolves to a non-public address ({', '.join(private)}); callbacks and webhooks must reach "
            "the public internet (SENDPROMPTLY_ALLOW_PRIVATE_TARGETS=1 allows private ones on a local stack)"
        )
    return url


def check_email(address: str) -> str:
    if not isinstance(address, str) or len(address) > 254 or not _EMAIL_RE.fullmatch(address):
        raise TargetError("must be an email address like ops@example.com")
    return address
