"""SSRF at connect time: whatever a host resolves to, a non-public address is never connected to."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from common.safe_http import PrivateAddressRefused, outbound_session, public_only_socket


def addr_info(address: str) -> tuple:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, 443, 0, 0) if family == socket.AF_INET6 else (address, 443)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(PrivateAddressRefused, match="non-public"):
        public_only_socket(addr_info(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_get_a_socket(address: str) -> None:
    with public_only_socket(addr_info(address)) as sock:
        assert sock.family == addr_info(address)[0]


class FixedResolver(AbstractResolver):
    """Resolves every name to one address: a DNS answer that changed after the URL was saved."""

    def __init__(self, address: str):
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=self.address, port=port, family=socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


@pytest.fixture
async def local_server() -> AsyncIterator[tuple[int, list[str]]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1], seen
    await runner.cleanup()


@pytest.mark.parametrize("host", ["callback.example.com", "127.0.0.1"])
async def test_a_host_that_resolves_to_loopback_is_refused_at_connect(local_server, host: str) -> None:
    port, seen = local_server
    async with outbound_session(allow_private=False, timeout_seconds=5,
                                resolver=FixedResolver("127.0.0.1")) as s:
        with pytest.raises(aiohttp.ClientConnectorError, match=r"non-public address 127\.0\.0\.1"):
            await s.post(f"http://{host}:{port}/hook", data=b"{}")
    assert seen == []


async def test_private_targets_are_reached_when_allowed(local_server) -> None:
    port, seen = local_server
    async with outbound_session(allow_private=True, timeout_seconds=5,
                                resolver=FixedResolver("127.0.0.1")) as s:
        async with s.post(f"http://callback.example.com:{port}/hook", data=b"{}") as response:
            assert response.status == 200
    assert seen == ["/hook"]
