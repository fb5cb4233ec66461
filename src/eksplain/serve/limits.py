"""Limits that keep one request from taking the server down: body size and simulation time.

The body limit is a pure ASGI middleware: it refuses a declared ``Content-Length`` over the
limit before reading anything, and counts the bytes of a streamed body as they arrive, so a
client that lies about (or omits) the length is cut off at the limit too.

A simulation runs in a worker thread and checks a deadline once a simulated minute through
the facade's ``progress`` callback, so a run that would take too long stops itself (Python
cannot kill a thread); the route also stops waiting at the deadline, with a little grace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eksplain.serve.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["BodyLimit", "Deadline", "DeadlineExceededError"]



def _too_large(limit_bytes: int) -> bytes:
    body = Problem(title="Request body too large", status=413,
                   detail=f"The request body is over the limit of {limit_bytes:,} bytes.",
                   hint="a workload spec is a few hundred bytes; send only the spec")
    return json.dumps(body.model_dump()).encode()


class BodyLimit:
    """Refuse request bodies over ``limit_bytes`` with 413 problem+json."""

    def __init__(self, app: ASGIApp, limit_bytes: int) -> None:
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit_bytes and not started:
                    # answer now, and tell the app the client has gone so it stops reading
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 413 is sent; whatever the app answers to the disconnect is not
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, tracking_send)

    async def _refuse(self, send: Send) -> None:
        body = _too_large(self.limit_bytes)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class DeadlineExceededError(Exception):
    """The work ran past its time limit."""


class Deadline:
    """A wall-clock limit that a long computation checks through its progress callback."""

    def __init__(self, limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = limit_s
        self._clock = clock
        self._end = clock() + limit_s

    def check(self, _done: float = 0.0) -> None:
        """A ``progress`` callback: raise ``DeadlineExceededError`` once the limit has passed."""
        if self._clock() > self._end:
            raise DeadlineExceededError
