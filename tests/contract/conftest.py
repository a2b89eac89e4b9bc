"""Fixtures of the contract suites: each store test runs once per backend in ``STORE_BACKENDS``
(see ``store_backends.py`` to add one)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from store_backends import STORE_BACKENDS, SYMBOLS, StoreBackend, make_backend

from memetrade.ports import TradeStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    backend = make_backend(request.param, tmp_path)
    yield backend
    backend.drop()


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[TradeStore]:
    """An open store on a fresh database, with ``SYMBOLS`` configured; closed afterwards."""
    opened = store_backend.make()
    await opened.open(SYMBOLS)
    try:
        yield opened
    finally:
        await opened.close()
