"""Long-polling (POST), cross-origin long-polling, callback-polling (JSON-P) and CORS.

Bayeux errors travel inside a 200 reply; only failures of the transport itself
(unparseable bodies, bad callbacks, oversize requests) get a 4xx in plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from faye.batch import Batch
from faye.transport.codec import BadRequest, decode_messages, encode_items, has_connect
from faye.transport.port import ServerPort
from faye.transport.request import Request
from faye.transport.responses import (
    NO_CACHE,
    NOSNIFF,
    BodyTooLarge,
    ClientGone,
    Headers,
    Receive,
    Scope,
    Send,
    header,
    plain,
    read_body,
    respond,
)

log = logging.getLogger("faye.transport")

JSONP_CALLBACK = "jsonpcallback"
_CALLBACK_RE = re.compile(r"[a-z_$][a-z0-9_$]*(?:\.[a-z_$][a-z0-9_$]*)*", re.IGNORECASE)

JSON_TYPE = b"application/json; charset=utf-8"
JAVASCRIPT_TYPE = b"text/javascript; charset=utf-8"

PREFLIGHT_HEADERS: Headers = [
    (b"access-control-allow-credentials", b"true"),
    (
        b"access-control-allow-headers",
        b"Accept, Authorization, Content-Type, Pragma, X-Requested-With",
    ),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-max-age", b"86400"),
]


def is_preflight(scope: Scope) -> bool:
    return scope["method"] == "OPTIONS" or header(scope, b"access-control-request-method") == "POST"


async def preflight(scope: Scope, send: Send) -> None:
    origin = header(scope, b"origin") or header(scope, b"referer") or "*"
    headers = [*PREFLIGHT_HEADERS, (b"access-control-allow-origin", origin.encode("latin-1"))]
    await respond(send, 200, headers)


def cors_headers(scope: Scope) -> Headers:
    origin = header(scope, b"origin")
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
    ]


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def process_watching(
    server: ServerPort, messages: Any, request: Request, receive: Receive
) -> Batch | None:
    """Process a batch; if it holds a connect, give up when the client goes away.

    Returns None when the client vanished; the abandoned connect puts back any
    messages it had taken, so nothing is lost with the dead request.
    """
    if not has_connect(messages):
        return await server.handle(messages, request)
    work = asyncio.ensure_future(server.handle(messages, request))
    gone = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    return None if work.cancelled() else work.result()


class PollingTransport:
    def __init__(self, server: ServerPort, max_request_size: int) -> None:
        self.server = server
        self.max_request_size = max_request_size

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        try:
            if method == "GET":
                query = _query(scope)
                callback = query.get("jsonp", JSONP_CALLBACK)
                if not _CALLBACK_RE.fullmatch(callback):
                    raise BadRequest("invalid JSON-P callback")
                if "message" not in query:
                    raise BadRequest("missing message parameter")
                messages = decode_messages(query["message"])
            elif method == "POST":
                callback = ""
                messages = await self._read_post(scope, receive)
            else:
                raise BadRequest(f"unsupported method {method}")
        except BadRequest as exc:
            log.info("bad request: %s", exc)
            await plain(send, 400, "Bad request")
            return
        except BodyTooLarge:
            await plain(send, 413, "Request entity too large")
            return
        except ClientGone:
            return
        request = Request(scope)
        try:
            batch = await process_watching(self.server, messages, request, receive)
        except Exception:
            # Not the messages: they may be large, or carry secrets.
            count = len(messages) if isinstance(messages, list) else 1
            log.exception("failed to process a request of %d message(s)", count)
            await plain(send, 400, "Bad request")
            return
        if batch is None:
            return
        body = encode_items(batch.replies)
        headers = [NO_CACHE, NOSNIFF, *cors_headers(scope)]
        if callback:
            body = b"/**/" + callback.encode() + b"(" + _escape_js(body) + b");"
            headers += [
                (b"content-type", JAVASCRIPT_TYPE),
                (b"content-disposition", b"attachment; filename=f.txt"),
            ]
        else:
            headers.append((b"content-type", JSON_TYPE))
        try:
            await respond(send, 200, headers, body)
        except OSError:
            batch.unwritten()
            raise
        batch.written()

    async def _read_post(self, scope: Scope, receive: Receive) -> Any:
        body = await read_body(scope, receive, self.max_request_size)
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            return decode_messages(body)
        query = _query(scope)
        if "jsonp" in query and not _CALLBACK_RE.fullmatch(query["jsonp"]):
            raise BadRequest("invalid JSON-P callback")
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise BadRequest("body is not UTF-8") from exc
        message = form.get("message", [None])[0] or query.get("message")
        if not message:
            raise BadRequest("missing message parameter")
        return decode_messages(message)


def _query(scope: Scope) -> dict[str, str]:
    raw = bytes(scope.get("query_string", b""))
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise BadRequest("query string is not UTF-8") from exc
    return {key: values[0] for key, values in parsed.items()}


def _escape_js(body: bytes) -> bytes:
    """JSON is not quite JavaScript: U+2028 and U+2029 end a JS string literal."""
    return body.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")
