"""The exchange core: order books, matching, balances and fees for the meme-token pairs.

Pure and synchronous: commands in (``PlaceOrder``, ``CancelOrder``, ``CancelAll``,
``Deposit``, ``Withdraw``) with their timestamp as data, events out (``OrderUpdate``,
``Fill``, ``BalanceUpdate``, ``BookLevelChange``). ``Engine.execute`` is deterministic and
integer-only, so a snapshot plus a replay of the journaled commands rebuilds the state exactly.

Units: prices in ticks, quantities in lots, balances in each asset's unit (see ``markets``).

Matching: one book per market, price-time priority, FIFO within a level; the book is never
crossed after a command. Limit GTC rests its remainder; IOC expires it; FOK fills entirely or
expires untouched; post-only is refused (``would_take``) if it would take. Market orders fill
what the book has and expire the rest (an empty book is an expiry, not an error).

Stops: ``stop_market`` and ``stop_limit`` orders wait in a per-market list, their funds
reserved at placement. A buy stop triggers when a trade prints at or above its stop price, a
sell stop at or below; triggered stops run after the order whose trades triggered them,
oldest first, within the same command, and may trigger more (each stop fires once, so the
cascade ends). A stop whose price the last trade already reached is refused
(``would_trigger``): it would be a market or limit order.

Self-trade prevention, chosen by the incoming order (``stp``) when it meets a resting order
of the same user:

* ``expire_taker`` (default): the incoming order stops matching and its rest expires;
* ``expire_maker``: the resting order expires and matching goes on;
* ``expire_both``: both expire;
* ``none``: they trade (fees are paid on both sides).

Expired orders report ``reason="self_trade"``.

Balances: per user and asset, ``available`` and ``locked``. Placing an order reserves
(locks) what it may spend: a sell its quantity of base; a buy with a price, per lot, the
notional at its price plus the highest fee rate of the schedule rounded up (so the reserve is
always ``remaining * per_lot`` and every fill can pay); a market buy by ``quote_amount`` that
amount; a market buy by quantity what taking the book would cost at the highest fee rate
(refused with ``insufficient_balance`` if not available). A fill settles both sides and the
fee collector at once; a buy filling below its price gets the difference back at once; an
order that ends releases what it still holds. No balance is ever negative.

Fees: in the quote asset on both sides, ``ceil(notional * bps / 10_000)`` per fill (rounded up,
in the exchange's favour), by the user's tier from their 30-day quote volume (see ``fees``).
They are credited to the fee collector, user 0, so for every asset the sum of all balances
equals deposits less withdrawals. User 0 cannot trade or deposit; it can withdraw.

Events are reported once per command where that is enough: one ``OrderUpdate`` for an
incoming order (its state after matching), one ``BalanceUpdate`` per touched balance and one
``BookLevelChange`` per touched price level, each with its value after the command.

Refusals (``Outcome.code``): ``unknown_symbol``, ``unknown_asset``, ``invalid_user``,
``invalid_order`` (field combination), ``invalid_price``, ``invalid_quantity``,
``below_min_notional``, ``insufficient_balance``, ``would_take``, ``would_trigger``,
``too_many_orders`` (open orders per user, resting and stops; orders that cannot rest are not
capped), ``unknown_order`` (an id never issued) and ``order_not_open`` (an issued id that is
not an open order of this user: ended, or someone else's; the two are deliberately
indistinguishable so order ids reveal nothing about other users).
"""

from memetrade.domain.exchange.commands import (
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    OrderType,
    PlaceOrder,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Withdraw,
    decode_command,
    encode_command,
)
from memetrade.domain.exchange.engine import DEFAULT_MAX_OPEN_ORDERS, Engine
from memetrade.domain.exchange.events import (
    BalanceInfo,
    BalanceUpdate,
    BookLevelChange,
    BookSide,
    Event,
    Fill,
    OrderInfo,
    OrderStatus,
    OrderUpdate,
    Outcome,
)
from memetrade.domain.exchange.fees import DEFAULT_FEE_SCHEDULE, FeeSchedule, FeeTier, fee
from memetrade.domain.exchange.markets import DEFAULT_QUOTE, Market, build_markets
from memetrade.domain.exchange.matching import FEE_COLLECTOR

__all__ = [
    "DEFAULT_FEE_SCHEDULE",
    "DEFAULT_MAX_OPEN_ORDERS",
    "DEFAULT_QUOTE",
    "FEE_COLLECTOR",
    "BalanceInfo",
    "BalanceUpdate",
    "BookLevelChange",
    "BookSide",
    "CancelAll",
    "CancelOrder",
    "Command",
    "Deposit",
    "Engine",
    "Event",
    "FeeSchedule",
    "FeeTier",
    "Fill",
    "Market",
    "OrderInfo",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Outcome",
    "PlaceOrder",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
    "Withdraw",
    "build_markets",
    "decode_command",
    "encode_command",
    "fee",
]
