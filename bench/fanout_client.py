"""WebSocket clients for the fan-out benchmark, run as separate processes.

``python -m bench.fanout_client URL N OUT``: open ``N`` connections to ``URL`` (a trades
stream), print ``ready`` once all are open, then record every message's receive time and the
send time the driver embedded in the trade id (``b<ns>-<seq>``), until stdin closes. Then the
``(send_ns, recv_ns)`` pairs go to ``OUT`` (a .npy file) and a JSON summary to stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from websockets.asyncio.client import connect

from bench.common import raise_fd_limit

__all__ = ["main"]

_MARK = b'"id":"b'


async def _client(url: str, sends: list[int], recvs: list[int], opened: list[int]) -> None:
    clock = time.time_ns
    async with connect(url, max_queue=None, ping_interval=None, compression=None,
                       open_timeout=120) as ws:
        opened[0] += 1
        async for message in ws:
            now = clock()
            data = message.encode() if isinstance(message, str) else message
            i = data.find(_MARK)
            if i >= 0:
                j = data.index(b"-", i)
                sends.append(int(data[i + len(_MARK) : j]))
                recvs.append(now)


async def _main(url: str, n: int, out: str) -> None:
    sends: list[int] = []
    recvs: list[int] = []
    opened = [0]
    failed = 0
    tasks = []
    for k in range(n):
        tasks.append(asyncio.create_task(_client(url, sends, recvs, opened)))
        if k % 200 == 199:
            await asyncio.sleep(0.05)  # Do not flood the listen backlog.
    while opened[0] + sum(t.done() for t in tasks) < n:  # noqa: ASYNC110 (two conditions)
        await asyncio.sleep(0.05)
    failed = sum(t.done() for t in tasks)
    print(f"ready {opened[0]} {failed}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # The driver closes stdin when done.
    closed = sum(t.done() for t in tasks)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    np.save(out, np.array([sends, recvs], dtype=np.int64))
    print(json.dumps({"opened": opened[0], "failed": failed, "closed_early": closed,
                      "messages": len(recvs)}), flush=True)


def main() -> None:
    raise_fd_limit()
    url, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    asyncio.run(_main(url, n, out))


if __name__ == "__main__":
    main()
