"""The store backends the contract suite runs against, and how to reach a fresh database of each.

To add a backend (PostgreSQL), add its name to ``STORE_BACKENDS`` and a branch to
``make_backend`` returning a ``StoreBackend`` on a fresh, empty database (a new schema per test,
say), calling ``pytest.skip`` when its server is not configured.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memetrade.domain.symbols import PRESETS, SymbolSpec
from memetrade.ports import TradeStore

__all__ = ["STORE_BACKENDS", "SYMBOLS", "StoreBackend", "make_backend"]

STORE_BACKENDS = ["sqlite"]

# Symbols the ``store`` fixture is opened with.
SYMBOLS: list[SymbolSpec] = [PRESETS["PEPE"], PRESETS["DOGE"]]


@dataclass(frozen=True)
class StoreBackend:
    """How to reach one fresh database of one backend.

    ``make`` returns a new, unopened store on that database (call it again to "reopen").
    ``child_setup`` is Python source that, run in another process, binds ``make_store`` to a
    zero-argument callable doing the same: the kill -9 test needs it.
    """

    name: str
    make: Callable[[], TradeStore]
    child_setup: str


def make_backend(name: str, scratch: Path) -> StoreBackend:
    """Return backend ``name`` on a fresh database; ``scratch`` is an empty directory of its own."""
    if name == "sqlite":
        from memetrade.adapters.storage.sqlite import SqliteStore

        # A directory that does not exist yet: open() must create it.
        path = scratch / "data" / "memetrade.db"
        return StoreBackend(
            name="sqlite",
            make=lambda: SqliteStore(path),
            child_setup=(
                "from memetrade.adapters.storage.sqlite import SqliteStore\n"
                f"make_store = lambda: SqliteStore({str(path)!r})\n"
            ),
        )
    raise AssertionError(f"no fixture for store backend {name!r}")
