"""Helpers shared by the REST and ingest end-to-end tests (test_rest.py, test_ingest.py)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from e2e_server import TOKEN, Server, start_server

__all__ = ["AUTH", "assert_error", "make_client", "running"]

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def running(data_dir: Path, **env: str) -> Iterator[Server]:
    """A server for the ``with`` block; on exit it is stopped and asserted to have stayed
    alive and logged no unhandled exception."""
    srv = start_server(data_dir, **env)
    try:
        yield srv
        assert srv.process.poll() is None, "the server died:\n" + "".join(srv.log)
    finally:
        srv.stop()
    log = "".join(srv.log)
    assert "Traceback" not in log, log


def _no_server_errors(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.url} answered {response.status_code}"


def make_client(server: Server) -> httpx.Client:
    """A client that fails the test on any 5xx answer."""
    return httpx.Client(
        base_url=server.base_url, timeout=10, event_hooks={"response": [_no_server_errors]}
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    """``response`` is ``status`` with the JSON ``{"error": {"code", "message"}}`` body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
