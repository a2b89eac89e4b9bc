"""A deliberately naive exchange for one market, to check the engine against.

Lists and linear scans only: the book is a list of resting orders, the best maker is found by
``min`` over it every time, stops are scanned in full, a user's fee tier is summed from every
fill it ever had. It implements the documented rules (see ``memetrade.domain.exchange``) for
well-formed orders; field-combination checks are left to the example tests.
"""

from dataclasses import dataclass, field

DAY_MS = 86_400_000
ASSETS = ("DOGE", "USDT")


def ceil_fee(notional: int, bps: int) -> int:
    return -(-notional * bps // 10_000)


@dataclass
class RefOrder:
    id: int
    user: int
    side: str
    type: str
    tif: str
    stp: str
    price: int | None
    stop: int | None
    qty: int | None  # None: a buy by quote amount
    remaining: int
    reserved: int
    per_lot: int
    seq: int = 0  # when it joined the book: time priority


@dataclass
class RefFill:
    trade_id: int
    price: int
    quantity: int
    taker_order_id: int
    maker_order_id: int
    taker_fee: int
    maker_fee: int


@dataclass
class Reference:
    """``tiers``: (min volume in quote units, maker bps, taker bps), ascending."""

    min_notional: int
    tiers: list[tuple[int, int, int]]
    window_days: int
    max_open: int
    balances: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    book: list[RefOrder] = field(default_factory=list)
    stops: list[RefOrder] = field(default_factory=list)
    volume: list[tuple[int, int, int]] = field(default_factory=list)  # (user, day, amount)
    last: int | None = None
    next_id: int = 1
    next_trade: int = 1
    next_seq: int = 1
    fills: list[RefFill] = field(default_factory=list)
    day: int = 0
    low: int | None = None
    high: int | None = None

    @property
    def reserve_bps(self) -> int:
        return max(max(m, t) for _, m, t in self.tiers)

    def bal(self, user: int, asset: str) -> list[int]:
        return self.balances.setdefault((user, asset), [0, 0])

    def rates(self, user: int) -> tuple[int, int]:
        total = sum(a for u, d, a in self.volume if u == user and d > self.day - self.window_days)
        maker = taker = 0
        for floor, m, t in self.tiers:
            if total >= floor:
                maker, taker = m, t
        return maker, taker

    def open_orders(self, user: int) -> list[RefOrder]:
        return sorted((o for o in self.book + self.stops if o.user == user), key=lambda o: o.id)

    # -- commands ---------------------------------------------------------------------------

    def deposit(self, user: int, asset: str, amount: int) -> str | None:
        if amount <= 0:
            return "invalid_quantity"
        self.bal(user, asset)[0] += amount
        return None

    def withdraw(self, user: int, asset: str, amount: int) -> str | None:
        if amount <= 0:
            return "invalid_quantity"
        if self.balances.get((user, asset), [0, 0])[0] < amount:
            return "insufficient_balance"
        self.bal(user, asset)[0] -= amount
        return None

    def cancel(self, user: int, order_id: int) -> str | None:
        for o in self.book + self.stops:
            if o.id == order_id and o.user == user:
                self._drop(o)
                return None
        return "order_not_open" if 0 < order_id < self.next_id else "unknown_order"

    def cancel_all(self, user: int) -> None:
        for o in self.open_orders(user):
            self._drop(o)

    def place(
        self,
        user: int,
        side: str,
        type_: str,
        ts: int,
        qty: int | None = None,
        quote: int | None = None,
        price: int | None = None,
        stop: int | None = None,
        tif: str = "GTC",
        post_only: bool = False,
        stp: str = "expire_taker",
    ) -> str | None:
        self.fills = []
        self.day = ts // DAY_MS
        buy = side == "buy"
        if (
            (price is not None and qty is not None and price * qty < self.min_notional)
            or (price is None and quote is not None and quote < self.min_notional)
            or (
                price is None
                and stop is not None
                and qty is not None
                and stop * qty < self.min_notional
            )
        ):
            return "below_min_notional"
        last = self.last
        if stop is not None and last is not None and (last >= stop if buy else last <= stop):
            return "would_trigger"
        restable = stop is not None or (type_ == "limit" and tif == "GTC")
        if restable and len(self.open_orders(user)) >= self.max_open:
            return "too_many_orders"
        if post_only and price is not None and self._priority(side, user, price, "none"):
            return "would_take"
        per_lot, cap = 0, None
        if not buy:
            assert qty is not None
            reserve, asset = qty, "DOGE"
        elif price is not None:
            assert qty is not None
            per_lot = price + ceil_fee(price, self.reserve_bps)
            reserve, asset = qty * per_lot, "USDT"
        elif quote is not None:
            reserve, asset = quote, "USDT"
        else:
            assert qty is not None
            reserve, cap = self._walk_cost(user, stp, qty)
            asset = "USDT"
        if self.balances.get((user, asset), [0, 0])[0] < reserve:
            return "insufficient_balance"
        order = RefOrder(
            self.next_id, user, side, type_, tif, stp, price, stop, qty, qty or 0, 0, 0
        )
        self.next_id += 1
        order.per_lot = per_lot
        order.reserved = reserve
        cell = self.bal(user, asset)
        cell[0] -= reserve
        cell[1] += reserve
        self.bal(user, "DOGE" if asset == "USDT" else "USDT")
        if stop is not None:
            self.stops.append(order)
            return None
        self._run(order, cap)
        self._stops()
        return None

    # -- mechanics --------------------------------------------------------------------------

    def _priority(self, side: str, user: int, limit: int | None, stp: str) -> list[RefOrder]:
        """Makers a taker on ``side`` could meet, best first (STP not applied)."""
        buy = side == "buy"
        makers = [
            m
            for m in self.book
            if m.side != side and (limit is None or (m.price <= limit if buy else m.price >= limit))  # type: ignore[operator]
        ]
        return sorted(makers, key=lambda m: ((m.price if buy else -m.price), m.seq))  # type: ignore[operator]

    def _walk(self, order_user: int, side: str, stp: str, limit: int | None, qty: int):
        """(lots, [(price, lots)]) that taking up to ``qty`` would fill under the STP rule."""
        got, pieces = 0, []
        for m in self._priority(side, order_user, limit, stp):
            if m.user == order_user and stp != "none":
                if stp == "expire_maker":
                    continue
                break
            q = min(m.remaining, qty - got)
            pieces.append((m.price, q))
            got += q
            if got == qty:
                break
        return got, pieces

    def _walk_cost(self, user: int, stp: str, qty: int) -> tuple[int, int | None]:
        _, pieces = self._walk(user, "buy", stp, None, qty)
        cost = sum(p * q + ceil_fee(p * q, self.reserve_bps) for p, q in pieces)
        return cost, (pieces[-1][0] if pieces else None)

    def _release(self, o: RefOrder) -> None:
        cell = self.bal(o.user, "USDT" if o.side == "buy" else "DOGE")
        cell[1] -= o.reserved
        cell[0] += o.reserved
        o.reserved = 0

    def _drop(self, o: RefOrder) -> None:
        if o in self.book:
            self.book.remove(o)
        else:
            self.stops.remove(o)
        self._release(o)

    def _run(self, o: RefOrder, cap: int | None) -> None:
        limit = o.price if cap is None else cap
        if (
            o.tif == "FOK"
            and self._walk(o.user, o.side, o.stp, limit, o.remaining)[0] < o.remaining
        ):
            self._release(o)
            return
        reason = self._take(o, limit)
        rests = o.type in ("limit", "stop_limit") and o.tif == "GTC"
        if reason == "no_liquidity" and rests:
            o.seq = self.next_seq
            self.next_seq += 1
            self.book.append(o)
        else:
            self._release(o)

    def _take(self, o: RefOrder, limit: int | None) -> str | None:
        buy = o.side == "buy"
        while True:
            if o.qty is not None and o.remaining == 0:
                return None
            makers = self._priority(o.side, o.user, limit, o.stp)
            if not makers:
                return "no_liquidity"
            m = makers[0]
            if m.user == o.user and o.stp != "none":
                if o.stp == "expire_taker":
                    return "self_trade"
                self._drop(m)
                if o.stp == "expire_both":
                    return "self_trade"
                continue
            assert m.price is not None
            maker_bps = self.rates(m.user)[0]
            taker_bps = self.rates(o.user)[1]
            if o.qty is None:
                q = 0
                for n in range(1, m.remaining + 1):
                    if n * m.price + ceil_fee(n * m.price, taker_bps) <= o.reserved:
                        q = n
                if q == 0:
                    return "quote_spent"
            else:
                q = min(o.remaining, m.remaining)
            self._settle(o, m, q, m.price, maker_bps, taker_bps, buy)
            if m.remaining == 0:
                self.book.remove(m)
                self._release(m)

    def _settle(
        self,
        o: RefOrder,
        m: RefOrder,
        q: int,
        price: int,
        maker_bps: int,
        taker_bps: int,
        buy: bool,
    ) -> None:
        notional = price * q
        taker_fee = ceil_fee(notional, taker_bps)
        maker_fee = ceil_fee(notional, maker_bps)
        buyer, seller = (o, m) if buy else (m, o)
        buyer_fee, seller_fee = (taker_fee, maker_fee) if buy else (maker_fee, taker_fee)
        used = q * buyer.per_lot if buyer.per_lot else notional + buyer_fee
        cell = self.bal(buyer.user, "USDT")
        cell[1] -= used
        cell[0] += used - notional - buyer_fee
        buyer.reserved -= used
        self.bal(buyer.user, "DOGE")[0] += q
        self.bal(seller.user, "DOGE")[1] -= q
        seller.reserved -= q
        self.bal(seller.user, "USDT")[0] += notional - seller_fee
        self.bal(0, "USDT")[0] += taker_fee + maker_fee
        self.volume += [(o.user, self.day, notional), (m.user, self.day, notional)]
        if o.qty is not None:
            o.remaining -= q
        m.remaining -= q
        self.fills.append(RefFill(self.next_trade, price, q, o.id, m.id, taker_fee, maker_fee))
        self.next_trade += 1
        self.last = price
        self.low = price if self.low is None else min(self.low, price)
        self.high = price if self.high is None else max(self.high, price)

    def _stops(self) -> None:
        pending: list[RefOrder] = []
        while True:
            low, high = self.low, self.high
            self.low = self.high = None
            if low is not None and high is not None:
                hit = [
                    s
                    for s in self.stops
                    if (s.side == "buy" and s.stop <= high) or (s.side == "sell" and s.stop >= low)  # type: ignore[operator]
                ]
                for s in hit:
                    self.stops.remove(s)
                pending += hit
            if not pending:
                return
            first = min(pending, key=lambda s: s.id)
            pending.remove(first)
            self._run(first, None)
