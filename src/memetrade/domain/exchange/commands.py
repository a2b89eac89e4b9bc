"""Commands: the exchange's only inputs. Each is journaled as-is with its timestamp and replayed
on recovery, so they are small frozen Structs with stable tags and field names (MessagePack
with defaults omitted: a plain limit order and its timestamp encode to about 70 bytes)."""

from typing import Literal

import msgspec

__all__ = [
    "CancelAll",
    "CancelOrder",
    "Command",
    "Deposit",
    "OrderType",
    "PlaceOrder",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
    "Withdraw",
    "decode_command",
    "encode_command",
]

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market", "stop_market", "stop_limit"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
SelfTradePrevention = Literal["expire_taker", "expire_maker", "expire_both", "none"]


class _Command(msgspec.Struct, frozen=True, tag_field="cmd", omit_defaults=True):
    pass


class PlaceOrder(_Command, frozen=True, tag="place"):
    """Place an order. Prices are ticks, ``quantity`` lots, ``quote_amount`` quote units.

    Field combinations by type (anything else is refused with ``invalid_order``):

    * ``limit``: ``price`` and ``quantity``.
    * ``market``: ``quantity``; or, for a buy, ``quote_amount`` instead (spend at most this,
      fees included). ``time_in_force`` GTC or IOC (both mean: fill what the book has, expire
      the rest).
    * ``stop_limit``: ``stop_price``, ``price`` and ``quantity``; becomes a limit order when
      triggered.
    * ``stop_market``: ``stop_price``, and ``quantity`` for a sell or ``quote_amount`` for a
      buy (a buy's cost is only known at trigger time, so it is bounded by the amount reserved).
    """

    user_id: int
    symbol: str
    side: Side
    type: OrderType
    quantity: int | None = None
    quote_amount: int | None = None
    price: int | None = None
    stop_price: int | None = None
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False
    stp: SelfTradePrevention = "expire_taker"
    client_order_id: str | None = None


class CancelOrder(_Command, frozen=True, tag="cancel"):
    user_id: int
    order_id: int


class CancelAll(_Command, frozen=True, tag="cancel_all"):
    """Cancel every open order (stops included) of the user, in one symbol or in all."""

    user_id: int
    symbol: str | None = None


class Deposit(_Command, frozen=True, tag="deposit"):
    user_id: int
    asset: str
    amount: int


class Withdraw(_Command, frozen=True, tag="withdraw"):
    user_id: int
    asset: str
    amount: int


Command = PlaceOrder | CancelOrder | CancelAll | Deposit | Withdraw


class _Journaled(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    command: Command


# MessagePack: compact and fast. Every amount in a command is at most 2**62 (validation's
# MAX_UNITS), inside its 64-bit integers; balances can grow past that, so snapshots use JSON.
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Journaled)


def encode_command(command: Command, ts: int) -> bytes:
    """The command and the time it executed at (the engine reads no clock, so a replay needs
    the same ``ts``): what the journal stores for it."""
    # A tuple encodes to the same array as _Journaled, without building the Struct first.
    return _encoder.encode((ts, command))


def decode_command(payload: bytes) -> tuple[int, Command]:
    """``(ts, command)`` of a journal entry; raise ``msgspec.DecodeError`` if invalid."""
    entry = _decoder.decode(payload)
    return entry.ts, entry.command
