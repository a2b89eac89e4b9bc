"""The bus backends the bus contract suite runs against.

NATS: ``TEST_NATS_URL`` (default ``nats://127.0.0.1:4222``, JetStream enabled). Tests share the
server's streams, so each test uses subjects and consumer names of its own.
"""

import functools
import os
import socket
from urllib.parse import urlsplit

import pytest

from memetrade.ports import Bus

__all__ = ["BUS_BACKENDS", "NATS_URL", "make_bus", "nats_unreachable", "require_nats"]

BUS_BACKENDS = ["local", "nats"]

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


@functools.cache
def nats_unreachable() -> str | None:
    """Why the NATS server cannot be used, or None. Asked once per test session, with a plain
    socket (tests may already run an event loop): the server's INFO must announce JetStream."""
    host, _, port = urlsplit(NATS_URL).netloc.rpartition("@")[2].partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=3) as sock:
            info = sock.recv(4096)
    except OSError as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    if b'"jetstream":true' not in info:
        return "JetStream is not enabled (start nats-server with -js)"
    return None


def require_nats() -> None:
    """Skip without a NATS server, but fail under ``CI=true`` (CI provides one)."""
    error = nats_unreachable()
    if error is None:
        return
    message = f"NATS JetStream at {NATS_URL} is unreachable ({error})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(f"{message}; start it or point TEST_NATS_URL at one to run this test")


def make_bus(name: str, *, ack_wait_s: float = 1.0) -> Bus:
    """A new, unopened bus of backend ``name``; skips (fails under CI=true) without a server."""
    if name == "local":
        from memetrade.adapters.bus.local import LocalBus

        return LocalBus()
    if name == "nats":
        require_nats()
        from memetrade.adapters.bus.nats import NatsBus

        return NatsBus(NATS_URL, ack_wait_s=ack_wait_s)
    raise AssertionError(f"no fixture for bus backend {name!r}")
