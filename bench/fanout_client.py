"""WebSocket clients for the fan-out benchmark, run as separate processes.

``python -m bench.fanout_client URL N OUT``: open ``N`` connections to ``URL`` (a trades
stream), print ``ready`` once all are open, then record every message's receive time and the
send time the driver embedded in the trade id (``b<ns>-<seq>``), until stdin closes. Then the
``(send_ns, recv_ns)`` pairs go to ``OUT`` (a .npy file) and a JSON summary to stdout.

The clients share the machine's two cores with the server, so their own cost is part of what
the benchmark sees. A full client library (frame objects, a task and a queue per connection)
cost about three times the server's CPU per message; these clients are bare asyncio protocols
on uvloop that do the handshake, parse frame headers in place, answer pings and read the
send time out of the payload, nothing else, and they read their sockets in batches (see
``_POLL_S``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from urllib.parse import urlsplit

import numpy as np
import uvloop

from bench.common import raise_fd_limit

__all__ = ["main"]

_MARK = b'"id":"b'
# Sockets are read every half millisecond rather than as each becomes readable. On loopback
# the server's write(2) wakes the reading process, and a client process woken for every frame
# preempted the server about 1,000 times per trade at 5,000 clients (its involuntary context
# switches; about 75 with polling) and made each write dearer. The receive time is still taken
# when a frame is read, so what a client waits here counts against the server.
_POLL_S = 0.0005


class _Client(asyncio.Protocol):
    def __init__(self, request: bytes, sends: list[int], recvs: list[int]) -> None:
        self.request = request
        self.sends, self.recvs = sends, recvs
        self.buffer = b""
        self.open = False
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but writes like one.
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buffer = self.buffer + data if self.buffer else data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            self.open = buffer.startswith(b"HTTP/1.1 101")
            self.ready.set_result(self.open)
            buffer = buffer[end + 4 :]
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            opcode, length = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            start = pos + head
            if opcode == 1:
                i = buffer.find(_MARK, start, start + length)
                if i >= 0:
                    j = buffer.index(b"-", i)
                    self.sends.append(int(buffer[i + len(_MARK) : j]))
                    self.recvs.append(now)
            elif opcode == 9 and self.transport is not None:  # ping: answer with a masked pong
                payload = buffer[start : start + length]
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            pos = start + length
        self.buffer = buffer[pos:]


def _handshake(url: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    return parts.hostname or "127.0.0.1", parts.port or 80, request.encode()


async def _main(url: str, n: int, out: str) -> None:
    loop = asyncio.get_running_loop()
    host, port, request = _handshake(url)
    sends: list[int] = []
    recvs: list[int] = []
    clients: list[_Client] = []
    failed = 0
    for k in range(n):
        try:
            _, client = await loop.create_connection(
                lambda: _Client(request, sends, recvs), host, port
            )
            clients.append(client)
        except OSError:
            failed += 1
        if k % 200 == 199:
            await asyncio.sleep(0.05)  # Do not flood the listen backlog.
    results = await asyncio.gather(*(c.ready for c in clients))
    opened = sum(results)
    failed += len(results) - opened
    print(f"ready {opened} {failed}", flush=True)

    def poll() -> None:
        time.sleep(_POLL_S)
        loop.call_soon(poll)

    loop.call_soon(poll)
    await loop.run_in_executor(None, sys.stdin.read)  # The driver closes stdin when done.
    closed = sum(1 for c in clients if c.transport is None or c.transport.is_closing())
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    np.save(out, np.array([sends, recvs], dtype=np.int64))
    print(
        json.dumps(
            {"opened": opened, "failed": failed, "closed_early": closed, "messages": len(recvs)}
        ),
        flush=True,
    )


def main() -> None:
    raise_fd_limit()
    url, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    uvloop.run(_main(url, n, out))


if __name__ == "__main__":
    main()
