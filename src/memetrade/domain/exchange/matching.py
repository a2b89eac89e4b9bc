"""The exchange's state and the mechanics that change it: reserving funds, matching, settling
fills, triggering stops, ending orders. ``Engine`` validates commands and calls in here only
with commands that are sure to be accepted, so nothing in this module refuses anything.

Per command, the touched balances and price levels are collected and reported once each at
the end (``finish``): one ``BalanceUpdate`` per (user, asset) and one ``BookLevelChange`` per
level, with their values after the whole command.
"""

from heapq import heapify, heappop, heappush
from typing import Literal

from memetrade.domain.exchange.book import Balance, Book, Level, Order, walk
from memetrade.domain.exchange.events import (
    BalanceUpdate,
    BookLevelChange,
    Event,
    Fill,
    OrderStatus,
    OrderUpdate,
)
from memetrade.domain.exchange.fees import DAY_MS, FeeSchedule, Tiers, VolumeWindow
from memetrade.domain.exchange.markets import Market

__all__ = ["FEE_COLLECTOR", "Core", "EndReason"]

# The fee collector's user id: every fee is credited to its quote-asset balance, so the sum
# of all balances always equals deposits less withdrawals.
FEE_COLLECTOR = 0

# Why matching stopped before the order was done (None: it was).
EndReason = Literal["self_trade", "no_liquidity", "quote_spent"] | None


class Core:
    """Books, balances, open orders, fee volumes and id counters, and what changes them."""

    def __init__(self, markets: dict[str, Market], schedule: FeeSchedule) -> None:
        self.markets = markets
        self.schedule = schedule
        self.window_days = schedule.window_days
        self.reserve_bps = schedule.max_bps
        self.tiers: dict[str, Tiers] = {}
        self.balances: dict[int, dict[str, Balance]] = {}
        self.books: dict[str, Book] = {}
        for symbol, market in markets.items():
            if market.quote not in self.tiers:
                unit = 10**market.quote_decimals
                self.tiers[market.quote] = tuple(
                    (t.min_volume * unit, t.maker_bps, t.taker_bps) for t in schedule.tiers
                )
            self.books[symbol] = Book(market, self.balance(FEE_COLLECTOR, market.quote))
        # Volume is counted in the quote asset; with several quote assets the first one's
        # thresholds apply (all markets here share one quote asset, checked by Engine).
        self.tier_table: Tiers = next(iter(self.tiers.values()))
        self.orders: dict[int, Order] = {}
        self.user_orders: dict[int, dict[int, Order]] = {}
        self.windows: dict[int, VolumeWindow] = {}
        self.next_order_id = 1
        self.next_trade_id = 1
        # Per-command scratch.
        self.ts = 0
        self.day = 0
        self.events: list[Event] = []
        self.touched_balances: dict[Balance, None] = {}
        self.touched_levels: dict[Level, None] = {}

    # -- per command ------------------------------------------------------------------------

    def begin(self, ts: int) -> list[Event]:
        self.ts = ts
        self.day = ts // DAY_MS
        events: list[Event] = []
        self.events = events
        return events

    def finish(self) -> list[Event]:
        """Report the touched levels and balances, and return the command's events."""
        events, ts = self.events, self.ts
        if self.touched_levels:
            books = self.books
            for level in self.touched_levels:
                book = books[level.symbol]
                book.update_id += 1
                events.append(
                    BookLevelChange(
                        level.symbol, level.side, level.price, level.total, book.update_id, ts
                    )
                )
            self.touched_levels = {}
        if self.touched_balances:
            for b in self.touched_balances:
                events.append(BalanceUpdate(b.user_id, b.asset, b.available, b.locked, ts))
            self.touched_balances = {}
        return events

    def balance(self, user_id: int, asset: str) -> Balance:
        assets = self.balances.get(user_id)
        if assets is None:
            assets = self.balances[user_id] = {}
        cell = assets.get(asset)
        if cell is None:
            cell = assets[asset] = Balance(user_id, asset)
        return cell

    def update(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        self.events.append(
            OrderUpdate(
                order.id,
                order.user_id,
                order.symbol,
                order.side,
                order.type,
                status,
                order.price,
                order.stop_price,
                order.quantity,
                order.filled,
                order.remaining,
                order.cum_quote,
                order.cum_fee,
                reason,
                order.client_order_id,
                self.ts,
            )
        )

    # -- order life -------------------------------------------------------------------------

    def rest(self, order: Order, reserve: int, book: Book, ts: int) -> list[Event]:
        """Place a limit order that does not cross the book and return the command's events:
        a GTC order rests, an IOC or FOK one expires at once. The same effects and events as
        ``begin`` + ``submit`` + ``finish``, without their per-command bookkeeping: most orders
        on a live book are this case, and nothing here can trade or trigger a stop."""
        cell = order.quote_balance if order.is_buy else order.base_balance
        level = None
        if order.tif == "GTC":
            cell.available -= reserve
            cell.locked += reserve
            order.reserved = reserve
            level = (book.bids if order.is_buy else book.asks).append(order)
            self.register(order)
            status: OrderStatus = "new"
            reason = None
        else:
            # Reserved and released at once: the balance is unchanged, but reported as touched.
            status, reason = "expired", "ioc" if order.tif == "IOC" else "fok_not_filled"
        self.ts = ts
        events: list[Event] = []
        self.events = events
        self.update(order, status, reason)
        if level is not None:
            book.update_id += 1
            events.append(
                BookLevelChange(
                    level.symbol, level.side, level.price, level.total, book.update_id, ts
                )
            )
        events.append(BalanceUpdate(cell.user_id, cell.asset, cell.available, cell.locked, ts))
        return events

    def submit(self, order: Order, reserve: int, book: Book, cap: int | None = None) -> None:
        """Lock ``reserve`` for an accepted order, then match it on ``book`` (or file it as a
        stop) and run the stops its trades trigger. ``cap`` bounds a market order's price."""
        cell = order.quote_balance if order.is_buy else order.base_balance
        cell.available -= reserve
        cell.locked += reserve
        order.reserved = reserve
        self.touched_balances[cell] = None
        if order.stop_price is not None:
            self.register(order)
            book.add_stop(order)
            self.update(order, "new")
            return
        self.execute(order, book, cap)
        if book.low is not None:
            self.run_stops(book)

    def register(self, order: Order) -> None:
        """Record an order that stays open after the command (resting, or a waiting stop).
        Orders that end within their command are never registered."""
        self.orders[order.id] = order
        mine = self.user_orders.get(order.user_id)
        if mine is None:
            mine = self.user_orders[order.user_id] = {}
        mine[order.id] = order

    def execute(self, order: Order, book: Book, cap: int | None) -> None:
        """Match an incoming (or just triggered) order, then rest or end it, and report its
        state once (an order ending at once reports only its end)."""
        limit = order.price if cap is None else cap
        if order.tif == "FOK":
            ladder = book.asks if order.is_buy else book.bids
            got = walk(ladder, order.user_id, order.stp, limit, order.remaining, 1, 0)[0]
            if got < order.remaining:
                self.end(order, "expired", "fok_not_filled")
                return
        opposite = book.asks if order.is_buy else book.bids
        keys = opposite.keys
        # Most limit orders do not cross: skip the matching loop for them.
        if keys and (limit is None or keys[-1] >= limit * opposite.sign):
            reason = self.match(order, book, limit)
            if order.filled:
                touched = self.touched_balances
                touched[order.base_balance] = None
                touched[order.quote_balance] = None
        else:
            reason = "no_liquidity"
        if reason is None:
            self.end(order, "filled")
        elif reason == "self_trade":
            self.end(order, "expired", reason)
        elif reason == "quote_spent":
            if order.filled:
                self.end(order, "filled")
            else:
                self.end(order, "expired", "quote_amount_too_small")
        elif order.type == "market" or order.type == "stop_market":
            self.end(order, "expired", "no_liquidity")
        elif order.tif != "GTC":
            self.end(order, "expired", "ioc")
        else:
            ladder = book.bids if order.is_buy else book.asks
            self.touched_levels[ladder.append(order)] = None
            if order.id not in self.orders:
                self.register(order)
            self.update(order, "partially_filled" if order.filled else "new")

    def end(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        """Close an order that is in no ladder: release what it still holds and forget it."""
        reserved = order.reserved
        if reserved:
            cell = order.quote_balance if order.is_buy else order.base_balance
            cell.locked -= reserved
            cell.available += reserved
            order.reserved = 0
            self.touched_balances[cell] = None
        if self.orders.pop(order.id, None) is not None:
            mine = self.user_orders[order.user_id]
            del mine[order.id]
            if not mine:
                del self.user_orders[order.user_id]
        self.update(order, status, reason)

    def cancel(self, order: Order, status: OrderStatus, reason: str) -> None:
        """Take an open order off its book (or stop list) and end it."""
        book = self.books[order.symbol]
        if order.id in book.stops:
            book.remove_stop(order)
        else:
            ladder = book.bids if order.is_buy else book.asks
            self.touched_levels[ladder.remove(order)] = None
        self.end(order, status, reason)

    def run_stops(self, book: Book) -> None:
        """Execute the stops the last trades triggered, oldest first, and those their trades
        trigger in turn. Each stop triggers once (it leaves the stop list), so this ends after
        at most as many rounds as there are stops."""
        heap = [(order.id, order) for order in book.take_triggered()]
        heapify(heap)
        while heap:
            order = heappop(heap)[1]
            self.update(order, "triggered")
            self.execute(order, book, None)
            for more in book.take_triggered():
                heappush(heap, (more.id, more))

    # -- matching ---------------------------------------------------------------------------

    def match(self, taker: Order, book: Book, limit: int | None) -> EndReason:
        """Take liquidity from the opposite ladder, best price first, FIFO within a level,
        up to ``limit``. Return None when the order is done, else why matching stopped."""
        ladder = book.asks if taker.is_buy else book.bids
        keys, levels, sign = ladder.keys, ladder.levels, ladder.sign
        user_id, stp = taker.user_id, taker.stp
        by_quote = taker.quantity is None
        scale = book.scale
        while keys:
            key = keys[-1]
            level = levels[key]
            price = level.price
            if limit is not None and (price - limit) * sign < 0:
                return "no_liquidity"
            maker = level.head
            while maker is not None:
                following = maker.next
                if maker.user_id == user_id and stp != "none":
                    if stp == "expire_taker":
                        return "self_trade"
                    self.touched_levels[ladder.remove(maker)] = None
                    self.end(maker, "expired", "self_trade")
                    if stp == "expire_both":
                        return "self_trade"
                    maker = following
                    continue
                if by_quote:
                    q = self.affordable(taker, price * scale)
                    if q == 0:
                        return "quote_spent"
                    if q > maker.remaining:
                        q = maker.remaining
                else:
                    q = taker.remaining
                    if q > maker.remaining:
                        q = maker.remaining
                self.fill(taker, maker, level, price, q, book)
                if maker.remaining == 0:
                    ladder.remove(maker)
                    self.end(maker, "filled")
                else:
                    self.update(maker, "partially_filled")
                if not by_quote and taker.remaining == 0:
                    return None
                maker = following
        return "no_liquidity"

    def affordable(self, taker: Order, lot_notional: int) -> int:
        """The most lots a budget buy can still pay for at ``lot_notional`` per lot, fee
        included (the fee is rounded up per fill, so the estimate is corrected by steps)."""
        window = self.window(taker.user_id)
        bps = window.taker_bps
        budget = taker.reserved
        q = budget * 10_000 // (lot_notional * (10_000 + bps))
        while q > 0:
            notional = q * lot_notional
            if notional - (-notional * bps // 10_000) <= budget:
                break
            q -= 1
        return q

    def window(self, user_id: int) -> VolumeWindow:
        window = self.windows.get(user_id)
        if window is None:
            window = self.windows[user_id] = VolumeWindow(self.day, self.tier_table)
        elif window.day != self.day:
            window.roll(self.day, self.window_days, self.tier_table)
        return window

    def fill(
        self, taker: Order, maker: Order, level: Level, price: int, q: int, book: Book
    ) -> None:
        """Settle one trade of ``q`` lots at ``price``: both sides' balances, both fees, the
        fee collector, volumes, the level total and the order counters, atomically."""
        notional = price * q * book.scale
        windows, day = self.windows, self.day
        taker_window = windows.get(taker.user_id)
        if taker_window is None or taker_window.day != day:
            taker_window = self.window(taker.user_id)
        maker_window = windows.get(maker.user_id)
        if maker_window is None or maker_window.day != day:
            maker_window = self.window(maker.user_id)
        taker_fee = -(-notional * taker_window.taker_bps // 10_000)
        maker_fee = -(-notional * maker_window.maker_bps // 10_000)
        if taker.is_buy:
            buyer, seller, buyer_fee, seller_fee = taker, maker, taker_fee, maker_fee
        else:
            buyer, seller, buyer_fee, seller_fee = maker, taker, maker_fee, taker_fee
        cost = notional + buyer_fee
        # A limit buy releases its per-lot reservation for these lots and keeps the change
        # (price improvement, fee below the highest rate); a budget buy spends exactly.
        used = q * buyer.per_lot if buyer.per_lot else cost
        cell = buyer.quote_balance
        cell.locked -= used
        cell.available += used - cost
        buyer.reserved -= used
        buyer.base_balance.available += q
        seller.base_balance.locked -= q
        seller.reserved -= q
        seller.quote_balance.available += notional - seller_fee
        # The fee collector's balance is not reported per command: it moves with every fill,
        # and the fills carry the fees.
        book.fee_balance.available += taker_fee + maker_fee
        touched = self.touched_balances
        touched[maker.base_balance] = None
        touched[maker.quote_balance] = None
        taker_window.today += notional
        if taker_window.today >= taker_window.room:
            taker_window.retier(self.tier_table)
        maker_window.today += notional
        if maker_window.today >= maker_window.room:
            maker_window.retier(self.tier_table)
        if taker.quantity is not None:
            taker.remaining -= q
        taker.filled += q
        taker.cum_quote += notional
        taker.cum_fee += taker_fee
        maker.remaining -= q
        maker.filled += q
        maker.cum_quote += notional
        maker.cum_fee += maker_fee
        level.total -= q
        self.touched_levels[level] = None
        book.last_price = price
        if book.stops:  # Only waiting stops need the range of prices traded.
            low, high = book.low, book.high
            if low is None or high is None:
                book.low = book.high = price
            elif price < low:
                book.low = price
            elif price > high:
                book.high = price
        trade_id = self.next_trade_id
        self.next_trade_id = trade_id + 1
        self.events.append(
            Fill(
                trade_id,
                book.market.symbol,
                price,
                q,
                notional,
                taker.side,
                maker.id,
                taker.id,
                maker.user_id,
                taker.user_id,
                maker_fee,
                taker_fee,
                book.market.quote,
                self.ts,
            )
        )
