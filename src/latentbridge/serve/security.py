"""The server's guards, as plain ASGI middleware: the API key, the upload size limit and the
request log (which never holds audio, request bodies or query strings).

* API key: with a key configured, every HTTP request and every WebSocket handshake must carry it,
  as the ``X-API-Key`` header, ``Authorization: Bearer KEY``, the ``api_key`` query parameter
  (browsers cannot set headers on a page load or a WebSocket), or the ``latentbridge_api_key``
  cookie that the server sets (HttpOnly, SameSite=Strict) on a response to a request that gave a
  valid key in the query, so the web page's own requests carry it. Otherwise: 401. (CORS
  preflights, which browsers send without credentials, pass to the CORS layer.)
* Upload size: a request body over the limit is refused with 413 naming the limit, from its
  Content-Length when it has one, else as soon as the bytes received pass it.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

log = logging.getLogger("latentbridge.serve")

COOKIE = "latentbridge_api_key"
LOOPBACK_NAMES = ("localhost",)


def api_key_problem(key: str) -> str | None:
    """Why ``key`` cannot serve as the API key, or None: it must be visible ASCII without ``;``, ``,`` or quotes (a
    key outside Latin-1 broke the cookie header with a 500, one with ``;`` or a space came back cut in the cookie, and
    clients encode other letters differently in headers)."""
    bad = sorted({c for c in key if not 33 <= ord(c) <= 126 or c in ';,"\\'})
    if not key:
        return "the API key is empty"
    if bad:
        return ("the API key may hold visible ASCII letters, digits and punctuation only (no spaces, ';', ',', quotes "
                f"or backslashes; clients and cookies carry those differently); it holds {''.join(bad)!r}")
    return None


def _printable(text: str) -> str:
    """``text`` with control characters escaped, for one log line (a path with %0a forged a second one)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; any other address or name (0.0.0.0 included)
    reaches beyond this machine."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _send_json(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    def __init__(self, app, api_key: str):
        self.app = app
        self.key = api_key.encode()

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.key)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        if scope.get("method") == "OPTIONS" and "access-control-request-method" in headers:
            return await self.app(scope, receive, send)  # a CORS preflight carries no key; the CORS layer answers
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = (query.get("api_key") or [None])[0]
        auth = headers.get("authorization", "")
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no key
            pass
        candidates = [headers.get("x-api-key"), auth[7:].strip() if auth.lower().startswith("bearer ") else None,
                      from_query, cookie[COOKIE].value if COOKIE in cookie else None]
        if not any(self._ok(c) for c in candidates):
            detail = ("missing or wrong API key: send it as the X-API-Key header, 'Authorization: Bearer KEY', "
                      f"the api_key query parameter or the {COOKIE} cookie")
            if scope["type"] == "websocket":
                return await _deny_websocket(scope, receive, send, 401, detail)
            return await _send_json(send, 401, detail, [(b"www-authenticate", b'Bearer realm="latentbridge"')])
        if scope["type"] == "http" and self._ok(from_query):
            set_cookie = f"{COOKIE}={from_query}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

            async def send_with_cookie(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", set_cookie)]}
                await send(message)

            return await self.app(scope, receive, send_with_cookie)
        return await self.app(scope, receive, send)


async def _deny_websocket(scope, receive, send, status: int, detail: str) -> None:
    """Refuse a WebSocket handshake with an HTTP status (where the server supports it), else close."""
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})


class UploadLimitMiddleware:
    """413 for a request body over ``max_bytes`` (named in the message). The body is read here
    (at most ``max_bytes`` of it held) before the application sees it."""

    def __init__(self, app, max_bytes: int, idle_s: float = 60.0):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.idle_s = float(idle_s)

    def _detail(self, size: str) -> str:
        return (f"upload too large: {size}; the limit is {self.max_bytes} bytes "
                f"({self.max_bytes / 2**20:g} MiB, latentbridge serve --max-upload-mb)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = _headers(scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _send_json(send, 413, self._detail(f"{int(length)} bytes"))
        chunks, received = [], 0
        while True:
            try:  # a body that stops coming held its bytes, and the connection, without end
                message = await asyncio.wait_for(receive(), timeout=self.idle_s)
            except asyncio.TimeoutError:
                return await _send_json(send, 408, f"the upload stalled: no bytes for {self.idle_s:g} s after "
                                                   f"{received} bytes")
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            received += len(body)
            if received > self.max_bytes:
                return await _send_json(send, 413, self._detail(f"more than {self.max_bytes} bytes"))
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive():
            return replay.pop() if replay else await receive()

        await self.app(scope, replay_receive, send)


class RequestLogMiddleware:
    """One log line per request: method, path (no query string: it may hold the API key), status,
    body bytes, duration, client address. Never the body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 101 if scope["type"] == "websocket" else 500}
        size = {"bytes": 0}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.disconnect" and status["code"] == 500:
                status["code"] = 499  # the client went away before any answer: no server error
            if message["type"] == "http.request":
                size["bytes"] += len(message.get("body", b""))
            elif message["type"] == "websocket.receive":
                size["bytes"] += len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
            return message

        async def status_send(message):
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                # an answer to a client that went away reaches nobody: logged as 499, not as its status
                status["code"], status["started"] = 499 if status["code"] == 499 else message["status"], True
            elif message["type"] == "websocket.close" and status["code"] == 101:
                status["code"] = 101
            await send(message)

        try:
            await self.app(scope, counting_receive, status_send)
        except asyncio.CancelledError:  # the server shutting down cancels what still runs after its grace period:
            if scope["type"] != "http":   # a bare 500 and a traceback each (uvicorn's), also where the answer was
                raise                     # sent and an upload's temporary file was being closed
            if not status.get("started"):
                status["code"] = 503
                try:
                    await _send_json(send, 503, "the server is shutting down: the request was stopped before its "
                                                "answer; send it again when the server is back")
                except Exception:  # noqa: BLE001 - the client is gone too
                    pass
        finally:
            client = scope.get("client") or ("-", 0)
            code = "499 (client disconnected)" if status["code"] == 499 else status["code"]
            log.info("%s %s %s %d bytes in %.1f ms from %s", scope.get("method", "WS"),
                     _printable(str(scope.get("path"))), code, size["bytes"], 1000 * (time.perf_counter() - t0),
                     client[0])
