"""The request an extension sees: headers, URL and peer of the transport a message came on."""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs


class Request:
    """A read-only view of an ASGI scope, built lazily because most extensions never look."""

    __slots__ = ("_cookies", "_headers", "_params", "scope")

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope
        self._headers: dict[str, str] | None = None
        self._params: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased header names; repeated headers are joined with ``, ``."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self.scope.get("headers", ()):
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        return str(self.scope.get("path", "/"))

    @property
    def query_string(self) -> str:
        return bytes(self.scope.get("query_string", b"")).decode("latin-1")

    @property
    def params(self) -> dict[str, str]:
        if self._params is None:
            parsed = parse_qs(self.query_string, keep_blank_values=True)
            self._params = {key: values[0] for key, values in parsed.items()}
        return self._params

    @property
    def url(self) -> str:
        query = self.query_string
        return self.path + (f"?{query}" if query else "")

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(self.headers.get("cookie", ""))
            except Exception:  # a malformed Cookie header is the sender's problem
                jar = SimpleCookie()
            self._cookies = {key: morsel.value for key, morsel in jar.items()}
        return self._cookies

    @property
    def client(self) -> tuple[str, int] | None:
        peer = self.scope.get("client")
        return (str(peer[0]), int(peer[1])) if peer else None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"
