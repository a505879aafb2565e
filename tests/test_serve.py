"""What ``mixchat serve`` lets in (websocket origins, never a wildcard), how its websocket
talks (compressed unless told not to) and how its static files travel (gzipped)."""

from __future__ import annotations

from pathlib import Path

from mixchat.ui.server import websocket_origins


def test_local_server_accepts_only_its_own_names() -> None:
    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]


def test_public_bind_names_this_host_and_extra_origins_never_a_wildcard() -> None:
    origins = websocket_origins("0.0.0.0", 8080, ["chat.example.org"])
    assert "*" not in origins and "0.0.0.0:8080" not in origins
    assert "localhost:8080" in origins and origins[-1] == "chat.example.org"


def test_without_a_login_only_localhost_and_a_public_bind_needs_no_login() -> None:
    import pytest

    from mixchat.errors import ConfigError
    from mixchat.ui.server import Login, check_bind

    assert "serving on this machine only" in (check_bind("127.0.0.1", Login(), False) or "")
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0 without a login"):
        check_bind("0.0.0.0", Login(), False)
    assert "--no-login" in (check_bind("0.0.0.0", Login(), True) or "")
    assert check_bind("0.0.0.0", Login(basic_auth="pw"), False) is None
    oidc = Login(oauth_provider="generic", oauth_key="id", oauth_extra_params={"TOKEN_URL": "x"})
    assert check_bind("::", oidc, False) is None
    assert oidc.panel_options()["oauth_provider"] == "generic"
    assert oidc.panel_options()["oauth_extra_params"] == {"TOKEN_URL": "x"}
    with pytest.raises(ConfigError, match="choose one login"):
        check_bind("0.0.0.0", Login(basic_auth="pw", oauth_provider="github"), False)


def test_mixchat_serve_on_a_public_address_without_login_exits_with_one_line() -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "mixchat", "serve", "--backend", "echo", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith("mixchat: error: refusing to serve on 0.0.0.0 without a login")
    )


def _websocket_extensions(url: str) -> str:
    """What a client offering permessage-deflate gets from the page's websocket."""
    import asyncio
    import re
    import urllib.request

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    with urllib.request.urlopen(url) as page:
        token = re.search(r'"token":\s*"([^"]+)"', page.read().decode())
    assert token is not None
    origin = url.rstrip("/")
    request = HTTPRequest(url.replace("http", "ws") + "ws", headers={"Origin": origin})

    async def handshake() -> str:
        socket = await websocket_connect(
            request, subprotocols=["bokeh", token.group(1)], compression_options={}
        )
        socket.close()
        return str(socket.headers.get("Sec-WebSocket-Extensions", ""))

    return asyncio.run(handshake())


def test_the_websocket_is_compressed_by_default_and_0_turns_it_off(tmp_path: Path) -> None:
    from browser_fixtures import running_server

    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    with running_server(tmp_path / "on", "--backend", "echo") as server:
        assert _websocket_extensions(server.url) == "permessage-deflate"
    off = {"MIXCHAT_WEBSOCKET_COMPRESSION": "0"}
    with running_server(tmp_path / "off", "--backend", "echo", env=off) as server:
        assert _websocket_extensions(server.url) == ""


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request) as response:
        return response.status, dict(response.headers), response.read()


def test_static_files_go_gzipped_once_compressed_and_pages_and_ranges_stay_as_they_are(
    tmp_path: Path,
) -> None:
    import gzip
    import re

    from browser_fixtures import running_server

    with running_server(tmp_path, "--backend", "echo") as server:
        _, page_headers, page = _get(server.url, **{"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in page_headers  # a page is made per request
        script = re.search(rb'src="(static/js/bokeh\.min\.js[^"]*)"', page)
        assert script is not None
        url = server.url + script.group(1).decode()

        _, _, plain = _get(url)
        assert len(plain) > 500_000
        sent = []
        for _ in range(2):  # compressed as it streams (chunked), then from memory
            status, headers, body = _get(url, **{"Accept-Encoding": "gzip, deflate"})
            assert (status, headers["Content-Encoding"]) == (200, "gzip")
            assert "Accept-Encoding" in headers["Vary"]
            assert len(body) < len(plain) / 2
            assert gzip.decompress(body) == plain
            sent.append(body)
        assert sent[0] == sent[1]
        assert int(headers["Content-Length"]) == len(body)

        status, headers, part = _get(url, Range="bytes=0-99", **{"Accept-Encoding": "gzip"})
        assert (status, part) == (206, plain[:100])
        assert "Content-Encoding" not in headers
