"""The address guard for URLs a web user typed: no loopback, private, link-local or metadata
address unless the operator allow-lists it.

The check sits in the HTTP client's network layer (an ``httpcore2`` network backend): every
connection the client opens, the first one and each redirect's, resolves the host name, checks
every address it resolves to, and then connects to an address it checked. So a DNS name that
resolves to ``10.0.0.5``, a redirect to ``http://169.254.169.254/``, and a name whose answer
changes between check and connect (DNS rebinding) are all refused the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

from mixchat.errors import AddressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Cloud metadata services that are not in a private or link-local range everywhere.
METADATA = (
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, as the operating system answers."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class _Allowed:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    host: str | None
    port: int | None

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address in self.network
        return self.host == host.lower().rstrip(".")


def parse_allowed(entry: str) -> _Allowed:
    """``10.0.0.0/8``, ``192.168.1.5``, ``[fd00::1]:8000``, ``gpu-box``, ``gpu-box:8000``."""
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        text, port = inside, int(rest[1:]) if rest.startswith(":") else None
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = int(port_text)
    try:
        return _Allowed(ipaddress.ip_network(text, strict=False), None, port)
    except ValueError:
        return _Allowed(None, text.lower().rstrip("."), port)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address; None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    if any(address in network for network in METADATA):
        return "a cloud metadata address"
    for test, what in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (cloud metadata lives there)"),
        ("is_private", "a private address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, test):
            return what
    return None if address.is_global else "not a public address"


class AddressGuard:
    """Decides whether a user's endpoint may be reached, before every connection."""

    def __init__(self, allow: Iterable[str] = (), resolve: Resolver = system_resolve) -> None:
        self.allowed = [parse_allowed(entry) for entry in allow if entry.strip()]
        self.resolve = resolve

    async def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses to connect to; AddressRefused naming the first bad one."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            found = [str(literal)]
        else:
            try:
                found = await self.resolve(host, port)
            except OSError as error:
                raise AddressRefused(f"cannot resolve {host}: {error}") from None
            if not found:
                raise AddressRefused(f"{host} resolves to no address")
        for text in found:
            address = ipaddress.ip_address(text.split("%")[0])
            why = refusal(address)
            if why and not any(a.matches(host, address, port) for a in self.allowed):
                shown = host if literal is not None else f"{host} ({address})"
                raise AddressRefused(
                    f"{shown} is {why}: endpoints you add must be on the public internet "
                    "(an operator can allow a network with user_endpoint_allow)"
                )
        return found

    async def check_url(self, url: str) -> None:
        """The whole check for a URL a user typed, for early feedback (connections check again)."""
        host, port = split_url(url)
        await self.addresses(host, port)


def split_url(url: str) -> tuple[str, int]:
    """Host and port of an ``http(s)`` URL; AddressRefused for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused(f"{url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise AddressRefused("put the key in the key field, not in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused(f"{url!r} has an invalid port") from None
    return parts.hostname, port


class GuardedNetwork(httpcore2.AsyncNetworkBackend):
    """Connects only to addresses the guard accepted, for every connection of a client."""

    def __init__(self, guard: AddressGuard, inner: httpcore2.AsyncNetworkBackend) -> None:
        self.guard = guard
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.guard.addresses(host, port):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.AsyncNetworkStream:
        raise AddressRefused("user endpoints cannot use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(guard: AddressGuard) -> httpx2.AsyncHTTPTransport:
    """An httpx2 transport whose every connection goes through ``guard``.

    No proxy from the environment (a proxy would connect on the user's behalf, unchecked).
    httpx2's transport does not take a network backend, so the pool's is wrapped.
    """
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool
    pool._network_backend = GuardedNetwork(guard, pool._network_backend)
    return transport


def guarded_client(guard: AddressGuard, **kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=guarded_transport(guard), trust_env=False, **kwargs)


def cause_of(error: BaseException, kinds: Sequence[type[BaseException]]) -> BaseException | None:
    """The first exception of ``kinds`` in ``error``'s cause chain (SDKs wrap transport errors)."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, tuple(kinds)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
