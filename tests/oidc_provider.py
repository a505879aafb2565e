"""A small OpenID Connect provider for the tests: authorization code flow, one login form.

    with OidcProvider(client_id="mixchat", client_secret="s3cret") as provider:
        provider.users["alice"] = {"email": "alice@example.org", "groups": ["mixchat-admins"]}
        # serve with --oauth-provider generic and provider.panel_params()

``/authorize`` shows a form (user name), checks the client and the redirect URI, and sends the
browser back with a one-time code; ``/token`` checks the client secret, the code, its redirect
URI and (where sent) the PKCE verifier, and answers an access token and an HS256-signed ID
token; ``/userinfo`` answers the claims for a bearer token. It records what it was asked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from typing_extensions import Self


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcProvider:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.users: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.log: list[str] = []  # "GET /authorize", "POST /token 200", ...
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.provider = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def panel_params(self) -> list[str]:
        """``mixchat serve`` options for Panel's generic OIDC provider against this one."""
        return [
            "--oauth-provider", "generic",
            "--oauth-key", self.client_id,
            "--oauth-secret", self.client_secret,
            "--oauth-extra", f"AUTHORIZE_URL={self.url}/authorize",
            "--oauth-extra", f"TOKEN_URL={self.url}/token",
            "--oauth-extra", f"USER_URL={self.url}/userinfo",
            "--oauth-extra", "USER_KEY=preferred_username",
        ]  # fmt: skip

    def id_token(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(
            self.client_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256
        ).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def claims(self, user: str, nonce: str | None) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": self.client_id,
            "sub": f"user-{user}",
            "preferred_username": user,
            "iat": now,
            "exp": now + 3600,
            **({"nonce": nonce} if nonce else {}),
            **self.users[user],
        }

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    @property
    def provider(self) -> OidcProvider:
        return self.server.provider  # type: ignore[attr-defined, no-any-return]

    def log_message(self, *_: object) -> None:
        pass

    def _answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.provider.log.append(f"{self.command} {urlsplit(self.path).path} {status}")

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        fields = parse_qs(self.rfile.read(length).decode())
        return {key: values[0] for key, values in fields.items()}

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if parts.path == "/.well-known/openid-configuration":
            base = self.provider.url
            self._answer(
                200,
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "userinfo_endpoint": f"{base}/userinfo",
                },
            )
        elif parts.path == "/authorize":
            if query.get("client_id") != self.provider.client_id:
                self._answer(400, {"error": "unauthorized_client"})
                return
            hidden = "".join(
                f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                for k, v in query.items()
            )
            self._answer(
                200,
                "<html><body><h1>Test OIDC provider</h1><form method='post' action='/authorize'>"
                f"{hidden}<input name='login' placeholder='user name'>"
                "<button type='submit'>Sign in</button></form></body></html>",
                "text/html",
            )
        elif parts.path == "/userinfo":
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if token not in self.provider.tokens:
                self._answer(401, {"error": "invalid_token"})
                return
            self._answer(200, self.provider.tokens[token])
        else:
            self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        path = urlsplit(self.path).path
        form = self._form()
        if path == "/authorize":
            user = form.get("login", "")
            if user not in self.provider.users:
                self._answer(403, "<p>unknown user</p>", "text/html")
                return
            code = secrets.token_urlsafe(16)
            self.provider.codes[code] = {
                "user": user,
                "redirect_uri": form.get("redirect_uri"),
                "challenge": form.get("code_challenge"),
                "nonce": form.get("nonce"),
            }
            target = form["redirect_uri"]
            back = {"code": code, **({"state": form["state"]} if "state" in form else {})}
            self.send_response(302)
            self.send_header(
                "Location", f"{target}{'&' if '?' in target else '?'}{urlencode(back)}"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.provider.log.append("POST /authorize 302")
        elif path == "/token":
            self._token(form)
        else:
            self._answer(404, {"error": "not_found"})

    def _token(self, form: dict[str, str]) -> None:
        provider = self.provider
        secret = form.get("client_secret")
        basic = self.headers.get("Authorization") or ""
        if basic.startswith("Basic "):
            client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if secret != provider.client_secret:
            self._answer(401, {"error": "invalid_client"})
            return
        grant = provider.codes.pop(form.get("code", ""), None)
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            self._answer(400, {"error": "invalid_grant"})
            return
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
                self._answer(400, {"error": "invalid_grant", "error_description": "PKCE"})
                return
        claims = provider.claims(grant["user"], grant["nonce"])
        access = secrets.token_urlsafe(24)
        provider.tokens[access] = claims
        self._answer(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": provider.id_token(claims),
            },
        )
