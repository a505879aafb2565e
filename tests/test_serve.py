"""What ``mixchat serve`` lets in: websocket origins, never a wildcard."""

from __future__ import annotations

from mixchat.ui.server import websocket_origins


def test_local_server_accepts_only_its_own_names() -> None:
    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]


def test_public_bind_names_this_host_and_extra_origins_never_a_wildcard() -> None:
    origins = websocket_origins("0.0.0.0", 8080, ["chat.example.org"])
    assert "*" not in origins and "0.0.0.0:8080" not in origins
    assert "localhost:8080" in origins and origins[-1] == "chat.example.org"
