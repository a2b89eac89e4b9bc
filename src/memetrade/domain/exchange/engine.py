"""The exchange engine: validate a command, apply it, report what changed; answer queries.

``Engine.execute(command, ts_ms)`` is the only way state changes. It is synchronous,
deterministic and integer-only: the same commands with the same timestamps from the same
state give the same events and the same state, which is what recovery (snapshot + journal
replay) relies on. A refused command changes nothing at all, not even the id counters.
"""

import hashlib
from collections.abc import Iterable

from memetrade.domain.errors import UnknownSymbol
from memetrade.domain.exchange.book import Book, Order, walk
from memetrade.domain.exchange.commands import (
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from memetrade.domain.exchange.events import BalanceInfo, OrderInfo, Outcome
from memetrade.domain.exchange.fees import DAY_MS, DEFAULT_FEE_SCHEDULE, FeeSchedule, FeeTier
from memetrade.domain.exchange.markets import Market
from memetrade.domain.exchange.matching import FEE_COLLECTOR, Core
from memetrade.domain.exchange.snapshot import decode_state, encode_state
from memetrade.domain.exchange.validation import MAX_UNITS, check_shape

__all__ = ["DEFAULT_MAX_OPEN_ORDERS", "Engine"]

DEFAULT_MAX_OPEN_ORDERS = 1_000
_STOPS = ("stop_market", "stop_limit")


def _reject(code: str, message: str) -> Outcome:
    return Outcome(False, [], None, code, message)


class Engine:
    """The matching engine of a set of markets sharing one quote asset."""

    def __init__(
        self,
        markets: Iterable[Market],
        fee_schedule: FeeSchedule = DEFAULT_FEE_SCHEDULE,
        max_open_orders: int = DEFAULT_MAX_OPEN_ORDERS,
    ) -> None:
        by_symbol: dict[str, Market] = {}
        assets: dict[str, int] = {}
        for m in markets:
            if m.symbol in by_symbol:
                raise ValueError(f"market {m.symbol} is listed twice")
            if m.base in assets or m.base == m.quote:
                raise ValueError(f"asset {m.base} is the base of two markets or a quote asset")
            if assets.setdefault(m.quote, m.quote_decimals) != m.quote_decimals:
                raise ValueError(f"markets quoted in {m.quote} disagree on its decimals")
            by_symbol[m.symbol] = m
            assets[m.base] = m.amount_decimals
        quotes = {m.quote for m in by_symbol.values()}
        if len(quotes) != 1:
            raise ValueError("an engine's markets must share one quote asset")
        if quotes & {m.base for m in by_symbol.values()}:
            raise ValueError("a quote asset cannot also be a base asset")
        if max_open_orders < 1:
            raise ValueError("max_open_orders must be at least 1")
        self._markets = by_symbol
        self._assets = assets
        self._schedule = fee_schedule
        self._max_open_orders = max_open_orders
        self._core = Core(by_symbol, fee_schedule)

    @classmethod
    def restore(
        cls,
        markets: Iterable[Market],
        payload: bytes,
        fee_schedule: FeeSchedule = DEFAULT_FEE_SCHEDULE,
        max_open_orders: int = DEFAULT_MAX_OPEN_ORDERS,
    ) -> "Engine":
        """An engine in the state ``payload`` (from ``snapshot``) describes."""
        engine = cls(markets, fee_schedule, max_open_orders)
        decode_state(engine._core, payload)
        return engine

    # -- commands ---------------------------------------------------------------------------

    def execute(self, command: Command, ts_ms: int) -> Outcome:
        """Apply one command stamped ``ts_ms`` (epoch ms) and return what happened."""
        kind = type(command)
        if kind is PlaceOrder:
            return self._place(command, ts_ms)  # type: ignore[arg-type]
        if kind is CancelOrder:
            return self._cancel(command, ts_ms)  # type: ignore[arg-type]
        if kind is CancelAll:
            return self._cancel_all(command, ts_ms)  # type: ignore[arg-type]
        if kind is Deposit or kind is Withdraw:
            return self._transfer(command, ts_ms)  # type: ignore[arg-type]
        return _reject("invalid_order", f"not a command: {kind.__name__}")

    def _place(self, cmd: PlaceOrder, ts: int) -> Outcome:
        core = self._core
        user_id = cmd.user_id
        if user_id <= FEE_COLLECTOR:
            return _reject("invalid_user", "user ids start at 1")
        book = core.books.get(cmd.symbol)
        if book is None:
            return _reject("unknown_symbol", f"unknown symbol {cmd.symbol!r}")
        problem = check_shape(cmd)
        if problem is not None:
            return _reject(*problem)
        market, scale = book.market, book.scale
        kind, is_buy, price, quantity = cmd.type, cmd.side == "buy", cmd.price, cmd.quantity
        stop, quote_amount = cmd.stop_price, cmd.quote_amount
        floor = market.min_notional
        if price is not None and quantity is not None:
            if price * quantity * scale < floor:
                return _reject("below_min_notional", "price x quantity is below min_notional")
        elif quote_amount is not None:
            if quote_amount < floor:
                return _reject("below_min_notional", "quote_amount is below min_notional")
        elif stop is not None and quantity is not None and stop * quantity * scale < floor:
            return _reject("below_min_notional", "stop_price x quantity is below min_notional")
        if stop is not None:
            last = book.last_price
            if last is not None and (last >= stop if is_buy else last <= stop):
                return _reject("would_trigger", "the last price has already reached stop_price")
        mine = core.user_orders.get(user_id)
        if (
            mine is not None
            and len(mine) >= self._max_open_orders
            and (stop is not None or (kind == "limit" and cmd.time_in_force == "GTC"))
        ):
            return _reject("too_many_orders", f"at most {self._max_open_orders} open orders")
        if cmd.post_only and price is not None:
            keys = (book.asks if is_buy else book.bids).keys
            if keys and (-keys[-1] <= price if is_buy else keys[-1] >= price):
                return _reject("would_take", "a post-only order would take liquidity")
        per_lot, cap = 0, None
        if not is_buy:
            assert quantity is not None
            reserve, asset = quantity, market.base
        elif price is not None:
            assert quantity is not None
            lot = price * scale
            per_lot = lot - (-lot * core.reserve_bps // 10_000)
            reserve, asset = quantity * per_lot, market.quote
        elif quote_amount is not None:
            reserve, asset = quote_amount, market.quote
        else:
            # A market buy by quantity: reserve what taking the book would cost right now,
            # at the highest fee rate; matching repeats the same walk, so it cannot cost more.
            assert quantity is not None
            bps = core.reserve_bps
            _, reserve, cap = walk(book.asks, user_id, cmd.stp, None, quantity, scale, bps)
            asset = market.quote
        assets = core.balances.get(user_id)
        cell = None if assets is None else assets.get(asset)
        if cell is None or reserve > cell.available:
            if reserve:
                return _reject("insufficient_balance", f"not enough {asset} available")
            cell = core.balance(user_id, asset)
        other = market.base if is_buy else market.quote
        counter = None if assets is None else assets.get(other)
        if counter is None:
            counter = core.balance(user_id, other)
        order_id = core.next_order_id
        core.next_order_id = order_id + 1
        order = Order(
            order_id,
            user_id,
            market.symbol,
            cmd.side,
            kind,
            cmd.time_in_force,
            cmd.stp,
            cmd.post_only,
            price,
            stop,
            quantity,
            quote_amount,
            cmd.client_order_id,
            ts,
            counter if is_buy else cell,
            cell if is_buy else counter,
            is_buy,
            quantity or 0,
            per_lot,
        )
        if kind == "limit":
            opposite = book.asks if is_buy else book.bids
            keys = opposite.keys
            assert price is not None
            if not keys or keys[-1] < price * opposite.sign:
                return Outcome(True, core.rest(order, reserve, book, ts), order_id)
        core.begin(ts)
        core.submit(order, reserve, book, cap)
        return Outcome(True, core.finish(), order_id)

    def _cancel(self, cmd: CancelOrder, ts: int) -> Outcome:
        core = self._core
        order = core.orders.get(cmd.order_id)
        if order is None or order.user_id != cmd.user_id:
            # Another user's open order answers like an ended one: ids reveal nothing.
            if 0 < cmd.order_id < core.next_order_id:
                return _reject("order_not_open", f"order {cmd.order_id} is not open")
            return _reject("unknown_order", f"no order {cmd.order_id}")
        core.begin(ts)
        core.cancel(order, "canceled", "canceled_by_user")
        return Outcome(True, core.finish(), order.id)

    def _cancel_all(self, cmd: CancelAll, ts: int) -> Outcome:
        core = self._core
        symbol = cmd.symbol
        if symbol is not None and symbol not in core.books:
            return _reject("unknown_symbol", f"unknown symbol {symbol!r}")
        mine = core.user_orders.get(cmd.user_id, {})
        targets = sorted(
            (o for o in mine.values() if symbol is None or o.symbol == symbol),
            key=lambda o: o.id,
        )
        core.begin(ts)
        for order in targets:
            core.cancel(order, "canceled", "canceled_by_user")
        return Outcome(True, core.finish())

    def _transfer(self, cmd: Deposit | Withdraw, ts: int) -> Outcome:
        core = self._core
        deposit = type(cmd) is Deposit
        if cmd.user_id < (FEE_COLLECTOR + 1 if deposit else FEE_COLLECTOR):
            return _reject("invalid_user", "user ids start at 1 (0 may only withdraw fees)")
        if cmd.asset not in self._assets:
            return _reject("unknown_asset", f"unknown asset {cmd.asset!r}")
        if not 0 < cmd.amount <= MAX_UNITS:
            return _reject("invalid_quantity", f"amount must be 1 to {MAX_UNITS} units")
        if deposit:
            cell = core.balance(cmd.user_id, cmd.asset)
        else:
            found = core.balances.get(cmd.user_id, {}).get(cmd.asset)
            if found is None or found.available < cmd.amount:
                return _reject("insufficient_balance", f"not enough {cmd.asset} available")
            cell = found
        core.begin(ts)
        cell.available += cmd.amount if deposit else -cmd.amount
        core.touched_balances[cell] = None
        return Outcome(True, core.finish())

    # -- queries ----------------------------------------------------------------------------

    @property
    def markets(self) -> dict[str, Market]:
        return dict(self._markets)

    def asset_decimals(self, asset: str) -> int:
        """Decimals of ``asset``'s balance unit (for ``format_units``/``parse_units``)."""
        try:
            return self._assets[asset]
        except KeyError:
            raise KeyError(f"unknown asset {asset!r}") from None

    def _book(self, symbol: str) -> Book:
        book = self._core.books.get(symbol)
        if book is None:
            raise UnknownSymbol(f"unknown symbol {symbol!r}")
        return book

    def open_orders(self, user_id: int, symbol: str | None = None) -> list[OrderInfo]:
        """The user's open orders (stops included), oldest first."""
        if symbol is not None:
            self._book(symbol)
        mine = self._core.user_orders.get(user_id, {})
        return [
            self._info(o)
            for o in sorted(mine.values(), key=lambda o: o.id)
            if symbol is None or o.symbol == symbol
        ]

    def order(self, order_id: int) -> OrderInfo | None:
        """An open order by id; None once it has ended (its history is in the events)."""
        order = self._core.orders.get(order_id)
        return None if order is None else self._info(order)

    def _info(self, o: Order) -> OrderInfo:
        waiting = o.id in self._core.books[o.symbol].stops
        return OrderInfo(
            o.id,
            o.user_id,
            o.symbol,
            o.side,
            o.type,
            "partially_filled" if o.filled else "new",
            o.price,
            o.stop_price,
            o.quantity,
            o.quote_amount,
            o.filled,
            o.remaining,
            o.cum_quote,
            o.cum_fee,
            o.reserved,
            o.tif,
            o.post_only,
            o.stp,
            o.type in _STOPS and not waiting,
            o.client_order_id,
            o.ts,
        )

    def balances(self, user_id: int) -> dict[str, BalanceInfo]:
        assets = self._core.balances.get(user_id, {})
        return {a: BalanceInfo(b.available, b.locked) for a, b in sorted(assets.items())}

    def depth(
        self, symbol: str, limit: int = 100
    ) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """``(last_update_id, bids, asks)``: up to ``limit`` levels a side as
        ``(price, total quantity)``, best first."""
        book = self._book(symbol)
        sides = []
        for ladder in (book.bids, book.asks):
            levels = ladder.levels
            sides.append([(levels[k].price, levels[k].total) for k in ladder.keys[::-1][:limit]])
        return book.update_id, sides[0], sides[1]

    def best_bid_ask(self, symbol: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        book = self._book(symbol)
        best: list[tuple[int, int] | None] = []
        for ladder in (book.bids, book.asks):
            level = ladder.levels[ladder.keys[-1]] if ladder.keys else None
            best.append(None if level is None else (level.price, level.total))
        return best[0], best[1]

    def last_price(self, symbol: str) -> int | None:
        return self._book(symbol).last_price

    def fee_tier(self, user_id: int, ts_ms: int) -> tuple[FeeTier, int]:
        """The user's tier and rolling quote volume (quote units) as of ``ts_ms``."""
        core = self._core
        window = core.windows.get(user_id)
        volume = 0
        if window is not None:
            cutoff = max(ts_ms // DAY_MS, window.day) - self._schedule.window_days + 1
            days, amounts = window.buckets()
            volume = sum(a for d, a in zip(days, amounts, strict=True) if d >= cutoff)
        unit = 10 ** next(iter(self._markets.values())).quote_decimals
        tier = self._schedule.tiers[0]
        for candidate in self._schedule.tiers:
            if volume >= candidate.min_volume * unit:
                tier = candidate
        return tier, volume

    # -- state ------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state, canonically encoded (see ``snapshot.py``)."""
        return encode_state(self._core)

    def state_hash(self) -> str:
        """SHA-256 (hex) of the canonical state: equal states, equal hashes."""
        return hashlib.sha256(encode_state(self._core)).hexdigest()
