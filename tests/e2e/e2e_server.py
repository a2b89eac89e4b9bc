"""A real ``memetrade serve`` process on a free port, for end-to-end tests."""

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TOKEN = "e2e-secret-token-0123456789"
_LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


@dataclass
class Server:
    """A ``memetrade serve`` child process."""

    process: subprocess.Popen[str]
    base_url: str
    ws_url: str
    data_dir: Path
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def ingest(self, client: httpx.Client, trades: object) -> httpx.Response:
        return client.post(
            "/internal/trades", json=trades, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process, wait for it, and close its stderr once fully read."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        status = self.process.wait(timeout=20)
        if self.reader is not None:
            self.reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return status


def start_server(data_dir: Path, **env: str) -> Server:
    """Start the service with its own database under ``data_dir``; wait until it listens."""
    environ = {
        **os.environ,
        "PORT": "0",
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{data_dir / 'memetrade.db'}",
        "INGEST_TOKEN": TOKEN,
        "MOCK_DATA": "0",
        "LOG_LEVEL": "warning",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "memetrade", "serve"],
        env=environ,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    log: list[str] = []
    port = None
    for line in process.stderr:
        log.append(line)
        if match := _LISTENING.search(line):
            port = int(match.group(2))
            break
    if port is None:
        process.wait(timeout=10)
        raise RuntimeError("server did not start:\n" + "".join(log))
    # Keep reading stderr so the child never blocks on a full pipe.
    reader = threading.Thread(target=lambda: log.extend(process.stderr or ()), daemon=True)
    reader.start()
    return Server(
        process, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", data_dir, log, reader
    )
