"""The local Prefect server's process: Prefect's own app, as `prefect server start` runs it, with one difference.

    python -m flows.prefect_app --host 127.0.0.1 --port 4200

Prefect's server keeps its database in SQLite, which lets one connection write at a time. A write whose
transaction loses the race for the write lock (two workers creating their assets' runs at once) is rolled
back, and the server answers 503; Prefect's client then sleeps 2 s (2**n with its n-th try) before it sends
the request again. About one batch in three of world assets two at a time lost 2.1-5.7 s this way (2-core
CPU). Here the server tries such a request again itself after a short pause (`PAUSES_S`), and answers 503
only when every try lost: the client's own back-off is left for a database that stays locked. Trying again is
safe because the lost write was rolled back whole; reads and the health check are passed straight through.

Everything else is Prefect's: `create_app(final=True)` builds the API, the UI and the background services
from the settings in the environment (`flows.local_server` sets them), and uvicorn serves it with the
keep-alive and websocket settings `prefect server start` uses.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PAUSES_S = (0.05, 0.1, 0.2, 0.4)  # after the 1st, 2nd, ... lost try: 0.75 s in all before the 503 goes back
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
MAX_BODY_BYTES = 32 << 20  # a request kept for trying again; a larger one is passed straight through


class RetryLockedWrites:
    """An ASGI app around `app`: a write answered 503 is sent to `app` again after each of `pauses` seconds."""

    def __init__(self, app: App, pauses: tuple[float, ...] = PAUSES_S) -> None:
        self.app = app
        self.pauses = pauses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        body, whole = await _read_body(receive)
        if not whole:  # too large to keep, or the client went away: passed on as it is, once
            await self.app(scope, _replay(body, receive, more=True), send)
            return
        for pause in (*self.pauses, None):
            # each try on a copy of the request's scope: routing writes into the one it is given
            lost = await self._try(dict(scope), body, receive, send, last=pause is None)
            if not lost:
                return
            await asyncio.sleep(pause)  # type: ignore[arg-type]

    async def _try(self, scope: Scope, body: bytes, receive: Receive, send: Send, last: bool) -> bool:
        """One try; True when it was answered 503 and that answer was held back (not on the last try)."""
        held = False

        async def answer(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 503 and not last:
                held = True
            if not held:
                await send(message)

        try:
            await self.app(scope, _replay(body, receive), answer)
        except Exception:
            # Starlette raises the error again after its handler answered (for the server's log): a held
            # answer's error is the lost race being tried again, any other goes on as before
            if not held:
                raise
        return held


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request's body, and whether that is all of it (not when the client went away or it is too large)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return bytes(body), False
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body), True
        if len(body) > MAX_BODY_BYTES:
            return bytes(body), False


def _replay(body: bytes, receive: Receive, more: bool = False) -> Receive:
    """`body` as the first message (`more`: the rest is still to come), then the client's own messages."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import get_current_settings

    settings = get_current_settings().server
    uvicorn.run(
        RetryLockedWrites(create_app(final=True)),
        host=args.host,
        port=args.port,
        timeout_keep_alive=settings.api.keepalive_timeout,
        ws_ping_interval=settings.api.websocket_ping_interval,
        ws_ping_timeout=settings.api.websocket_ping_timeout,
        log_level=settings.logging_level.lower(),
    )


if __name__ == "__main__":
    main()
