"""The address guard for endpoints users add: every address a URL leads to is checked before a
connection is made, on the first request and on every redirect.

Only 127.0.0.0/8 is ever connected to; names that "resolve" elsewhere come from a fake resolver.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from fault_server import FaultServer
from mixchat.backends import ChatRequest, backend_class
from mixchat.backends.guard import AddressGuard, cause_of, guarded_client
from mixchat.config import load_settings
from mixchat.errors import AddressRefused

REFUSED_V4 = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # the metadata service of AWS, GCP, Azure
    "100.100.100.200",  # Alibaba Cloud's
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
]
REFUSED_V6 = [
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "ff02::1",
]


def fake_resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve


@pytest.mark.parametrize("address", REFUSED_V4)
async def test_private_loopback_link_local_and_metadata_ipv4_are_refused(address: str) -> None:
    with pytest.raises(AddressRefused, match="public internet"):
        await AddressGuard().addresses(address, 80)


@pytest.mark.parametrize("address", REFUSED_V6)
async def test_the_same_ranges_in_ipv6_are_refused(address: str) -> None:
    with pytest.raises(AddressRefused):
        await AddressGuard().addresses(address, 443)
    with pytest.raises(AddressRefused):
        await AddressGuard().check_url(f"http://[{address}]:8000/v1")


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888"])
async def test_public_addresses_pass(address: str) -> None:
    assert await AddressGuard().addresses(address, 443) == [address]


async def test_dns_names_are_resolved_and_every_answer_is_checked() -> None:
    guard = AddressGuard(
        resolve=fake_resolver(
            {
                "intranet.example": ["10.0.0.5"],
                "mixed.example": ["93.184.216.34", "192.168.0.1"],
                "v6.example": ["fd12:3456::1"],
                "public.example": ["93.184.216.34"],
            }
        )
    )
    with pytest.raises(AddressRefused, match=r"intranet\.example \(10\.0\.0\.5\) is a private"):
        await guard.check_url("https://intranet.example/v1")
    with pytest.raises(AddressRefused, match="192.168.0.1"):
        await guard.check_url("https://mixed.example/v1")
    with pytest.raises(AddressRefused, match="fd12:3456::1"):
        await guard.check_url("https://v6.example/v1")
    with pytest.raises(AddressRefused, match="cannot resolve"):
        await guard.check_url("https://nowhere.example/v1")
    await guard.check_url("https://public.example/v1")


async def test_localhost_through_the_real_resolver_is_refused() -> None:
    with pytest.raises(AddressRefused, match="loopback"):
        await AddressGuard().check_url("http://localhost:8000/v1")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/",
        "gopher://x/",
        "/etc/passwd",
        "http://u:p@8.8.8.8/",
    ],
)
async def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(AddressRefused):
        await AddressGuard().check_url(url)


async def test_the_operator_can_allow_a_network_a_host_or_one_port() -> None:
    resolve = fake_resolver({"gpu-box": ["10.0.0.7"]})
    assert await AddressGuard(["10.0.0.0/8"], resolve).addresses("gpu-box", 8000)
    assert await AddressGuard(["gpu-box:8000"], resolve).addresses("gpu-box", 8000)
    with pytest.raises(AddressRefused):
        await AddressGuard(["gpu-box:8000"], resolve).addresses("gpu-box", 8001)
    assert await AddressGuard(["127.0.0.1:5000"]).addresses("127.0.0.1", 5000)
    with pytest.raises(AddressRefused):
        await AddressGuard(["127.0.0.1:5000"]).addresses("127.0.0.1", 5001)
    assert await AddressGuard(["[::1]:5000"]).addresses("::1", 5000)


# -- redirects: each connection is checked, not only the first URL


class _Recorder(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        server = self.server
        server.hits.append(self.path)  # type: ignore[attr-defined]
        target = server.redirect_to  # type: ignore[attr-defined]
        if target:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
        else:
            self.send_response(200)
            self.send_header("Content-Length", "2")
        self.end_headers()
        if not target:
            self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    servers: list[ThreadingHTTPServer] = []

    def start(redirect_to: str | None = None) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        httpd.hits = []  # type: ignore[attr-defined]
        httpd.redirect_to = redirect_to  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return httpd

    yield start  # type: ignore[misc]
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


async def _get(guard: AddressGuard, url: str) -> httpx2.Response:
    async with guarded_client(guard, follow_redirects=True) as client:
        return await client.get(url)


async def test_a_redirect_to_a_loopback_port_that_is_not_allowed_is_refused(http_server) -> None:  # type: ignore[no-untyped-def]
    inside = http_server()
    inside_port = inside.server_address[1]
    front = http_server(f"http://127.0.0.1:{inside_port}/secret")
    front_port = front.server_address[1]
    guard = AddressGuard([f"127.0.0.1:{front_port}"])  # the "public" server is allowed
    with pytest.raises(Exception) as raised:
        await _get(guard, f"http://127.0.0.1:{front_port}/start")
    assert isinstance(cause_of(raised.value, [AddressRefused]), AddressRefused)
    assert front.hits == ["/start"] and inside.hits == []  # never connected
    # allowed explicitly, the same redirect is followed
    both = AddressGuard([f"127.0.0.1:{front_port}", f"127.0.0.1:{inside_port}"])
    assert (await _get(both, f"http://127.0.0.1:{front_port}/start")).text == "ok"
    assert inside.hits == ["/secret"]


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://intranet.example/"],
)
async def test_redirects_to_metadata_ipv6_loopback_or_private_names_are_refused(
    http_server,  # type: ignore[no-untyped-def]
    target: str,
) -> None:
    front = http_server(target)
    port = front.server_address[1]
    resolve = fake_resolver({"intranet.example": ["10.9.8.7"], "127.0.0.1": ["127.0.0.1"]})
    guard = AddressGuard([f"127.0.0.1:{port}"], resolve)
    with pytest.raises(Exception) as raised:
        await _get(guard, f"http://127.0.0.1:{port}/")
    refused = cause_of(raised.value, [AddressRefused])
    assert isinstance(refused, AddressRefused), raised.value


# -- through a backend: a user's endpoint on a private address gets one clear line


async def test_a_user_endpoint_on_loopback_fails_clearly_and_sends_nothing() -> None:
    with FaultServer() as fault:
        settings = load_settings(
            backend="openai",
            base_url=f"{fault.url}/v1",
            model="m",
            openai_api_key="sk-user-own",
            untrusted_endpoint=True,
            max_retries=0,
        )
        backend = backend_class("openai")(settings)
        reply = await backend.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        await backend.aclose()
        assert reply.done.outcome == "error"
        assert isinstance(reply.done.exception, AddressRefused)
        assert "loopback" in (reply.done.error or "") and "sk-user-own" not in reply.done.error
        assert fault.requests == []
        allowed = settings.model_copy(update={"user_endpoint_allow": [f"127.0.0.1:{fault.port}"]})
        backend = backend_class("openai")(allowed)
        reply = await backend.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        await backend.aclose()
        assert reply.text == "Hello from the fault server."
        assert fault.requests[-1].headers["authorization"] == "Bearer sk-user-own"


async def test_the_mistral_backend_is_guarded_too() -> None:
    with FaultServer() as fault:
        settings = load_settings(
            backend="mistral",
            base_url=fault.url,
            model="m",
            mistral_api_key="user-key",
            untrusted_endpoint=True,
            max_retries=0,
        )
        backend = backend_class("mistral")(settings)
        reply = await backend.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        await backend.aclose()
        assert isinstance(reply.done.exception, AddressRefused), reply.done.error
        assert fault.requests == []
