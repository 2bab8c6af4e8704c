"""ASGI middleware: every request body is read, bounded and checked before any route or model sees it.

:class:`BodyGuard` sits between Starlette's outermost error middleware and the routers, so that
one hostile request can never take the process down or poison what is stored:

* **size**: more than ``max_bytes`` → 413 ``body_too_large``, whether the client declared a
  ``Content-Length`` or streams the body chunked;
* **time**: a body that has not fully arrived within ``body_timeout`` seconds (a client trickling
  one byte a second) → 408 ``request_timeout`` and the connection is closed, so slow clients do
  not hold the server;
* **depth**: JSON nested deeper than ``max_depth`` arrays/objects, or holding more than
  ``max_containers`` of them → 422 ``invalid_input``, found without any recursion (a count over
  the bytes, orjson's bounded parse, an iterative walk); a 100,000-deep body used to overflow the
  C stack of the JSON parser;
* **text**: a body that is not strict JSON in valid UTF-8 (invalid bytes, lone surrogate escapes
  such as ``"\\ud800"``, ``NaN``, a NUL) → 422 ``invalid_input``, so nothing stored can fail to
  be serialised again when it is read back;
* **abuse**: the public routes (``/health``, ``/v1/chain``) are rate-limited per client IP
  (429 ``rate_limited`` with ``Retry-After``);
* **failures**: an exception no handler took is answered 500 ``internal_error`` (and logged) here
  instead of escaping to the server, which would drop the keep-alive connection under the next
  request.

The body is then handed to the application unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re

import orjson
from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import RateLimited, RateLimiter
from .errors import problem

log = logging.getLogger("qcl.api")

_OPENERS = (b"[", b"{")
#: A ``\u0000`` escape (preceded by an even number of backslashes): NUL has no place in any text
#: here, and PostgreSQL cannot store it in a text column.
_NUL_ESCAPE = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
#: Routes anyone may call without logging in, each costing a chain call: rate-limited per client IP
#: (``/v1/auth/*`` is limited by its router, per IP and per account).
PUBLIC_PATHS = frozenset({"/health", "/v1/chain"})
#: Bodies smaller than this are checked on the event loop (microseconds); larger ones in a thread.
_INLINE_CHECK = 256 * 1024


def nesting_exceeds(value: object, max_depth: int) -> bool:
    """Whether a parsed JSON value nests deeper than ``max_depth`` (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def json_problem(body: bytes, max_depth: int = 64, max_containers: int = 10_000) -> str | None:
    """Why ``body`` is not acceptable JSON, or None.

    Cheapest checks first, so that no hostile body costs more than parsing it once:

    1. more than ``max_containers`` opening brackets (a count over the bytes; brackets inside
       strings count too, which no real request comes near): refused before anything parses it,
       as millions of tiny arrays cost seconds of CPU to build;
    2. strict JSON in UTF-8 (orjson: no invalid bytes, no lone surrogate escapes, no ``NaN``;
       its own depth bound of 1,024 keeps the parse itself safe);
    3. nesting deeper than ``max_depth``, measured on the parsed value only when the body has
       more opening brackets than that;
    4. no NUL character (``\\u0000``) in any string.
    """
    openers = sum(body.count(opener) for opener in _OPENERS)
    if openers > max_containers:
        return f"the request body holds more than {max_containers} arrays and objects"
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            return f"the request body nests arrays and objects deeper than {max_depth} levels"
        return f"the request body is not valid JSON in UTF-8: {exc}"
    if openers > max_depth and isinstance(value, dict | list) and nesting_exceeds(value, max_depth):
        return f"the request body nests arrays and objects deeper than {max_depth} levels"
    if b"u0000" in body and _NUL_ESCAPE.search(body):
        return "the request body holds a NUL character (\\u0000) in a string"
    return None


class _BodyTooLarge(Exception):
    pass


class BodyGuard:
    """Read the whole body under a size and time limit, check it, then replay it to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        max_depth: int = 64,
        max_containers: int = 10_000,
        body_timeout: float = 60.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_containers = max_containers
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.limiter is not None and scope.get("path") in PUBLIC_PATHS:
            client = scope.get("client")
            try:
                self.limiter.hit("public_ip", client[0] if client else "unknown", "requests from this client")
            except RateLimited as exc:
                response = problem(exc.status, exc.code, exc.detail, instance=scope["path"], **exc.extra)
                response.headers["Retry-After"] = str(exc.retry_after)
                await response(scope, receive, send)
                return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, 413, "body_too_large", self._too_large())
            return
        try:
            # a deadline on this task, not wait_for's extra task per request
            async with asyncio.timeout(self.body_timeout):
                body, disconnected = await self._read(receive)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send, 413, "body_too_large", self._too_large())
            return
        except TimeoutError:
            detail = f"the request body did not arrive within {self.body_timeout:g} seconds"
            await self._refuse(scope, receive, send, 408, "request_timeout", detail, close=True)
            return
        if disconnected:
            return  # the client went away; nobody to answer
        if body:
            check = (body, self.max_depth, self.max_containers)
            # a large body is checked off the event loop, which keeps serving other requests
            reason = (
                json_problem(*check) if len(body) < _INLINE_CHECK else await to_thread.run_sync(json_problem, *check)
            )
            if reason is not None:
                await self._refuse(scope, receive, send, 422, "invalid_input", reason)
                return
        await self._run(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path", ""))
            if not started:
                response = problem(
                    500, "internal_error", "the server failed; the error was logged", instance=scope.get("path")
                )
                await response(scope, receive, send)

    def _too_large(self) -> str:
        return f"request bodies are limited to {self.max_bytes} bytes"

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str, *, close: bool = False
    ) -> None:
        response = problem(status, code, detail, instance=scope.get("path", ""))
        if close or status == 413:
            response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then waits on the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
