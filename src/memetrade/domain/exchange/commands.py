"""Commands: the exchange's only inputs. Each is journaled as-is and replayed on recovery, so
they are small frozen Structs with stable tags and field names (MessagePack with defaults
omitted: a plain limit order encodes to about 60 bytes)."""

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

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Command)


def encode_command(command: Command) -> bytes:
    """The command as MessagePack: what the journal stores."""
    return _encoder.encode(command)


def decode_command(payload: bytes) -> Command:
    """Decode (and type-check) a journaled command; raise ``msgspec.DecodeError`` if invalid."""
    return _decoder.decode(payload)
