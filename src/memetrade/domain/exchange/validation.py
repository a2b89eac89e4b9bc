"""Field checks of an order that need no state: which fields each order type takes, and the
ranges of prices and sizes. Each problem is a ``(code, message)`` pair.

Every order passes through here, so the checks are unrolled (no loops over field lists):
about a third of the cost of placing a resting order when written the generic way.
"""

from memetrade.domain.exchange.commands import PlaceOrder

__all__ = ["MAX_CLIENT_ORDER_ID", "MAX_UNITS", "check_shape"]

# Prices, quantities and amounts are stored as signed 64-bit integers downstream.
MAX_UNITS = 2**62
MAX_CLIENT_ORDER_ID = 64

_SIDES = frozenset(("buy", "sell"))
_TYPES = frozenset(("limit", "market", "stop_market", "stop_limit"))
_TIFS = frozenset(("GTC", "IOC", "FOK"))
_STPS = frozenset(("expire_taker", "expire_maker", "expire_both", "none"))


def _combination(cmd: PlaceOrder) -> str | None:
    """What is wrong with the order's field combination, if anything."""
    kind, buy = cmd.type, cmd.side == "buy"
    has_qty, has_quote = cmd.quantity is not None, cmd.quote_amount is not None
    has_price, has_stop = cmd.price is not None, cmd.stop_price is not None
    if kind == "limit" or kind == "stop_limit":
        if not (has_price and has_qty) or has_quote:
            return f"a {kind} order takes price and quantity, no quote_amount"
        if has_stop != (kind == "stop_limit"):
            return "stop_price goes with stop orders only"
        if cmd.post_only and (kind == "stop_limit" or cmd.time_in_force != "GTC"):
            return "post_only goes with GTC limit orders only"
        return None
    if has_price:
        return f"a {kind} order takes no price"
    if cmd.post_only or cmd.time_in_force == "FOK":
        return f"a {kind} order takes neither post_only nor FOK"
    if kind == "market":
        if has_stop:
            return "stop_price goes with stop orders only"
        if has_qty == has_quote or (has_quote and not buy):
            return "a market order takes quantity, or (buys only) quote_amount"
        return None
    if not has_stop:
        return "a stop_market order takes stop_price"
    if (has_qty, has_quote) != ((False, True) if buy else (True, False)):
        return "a stop_market buy takes quote_amount, a stop_market sell quantity"
    return None


def check_shape(cmd: PlaceOrder) -> tuple[str, str] | None:
    """The first problem with the order's fields alone, or None."""
    price, quantity = cmd.price, cmd.quantity
    if (
        cmd.type == "limit"
        and price is not None
        and quantity is not None
        and 0 < price <= MAX_UNITS
        and 0 < quantity <= MAX_UNITS
        and cmd.stop_price is None
        and cmd.quote_amount is None
        and cmd.client_order_id is None
        and not cmd.post_only
        and cmd.side in _SIDES
        and cmd.time_in_force in _TIFS
        and cmd.stp in _STPS
    ):
        return None  # the plain limit order, most of the traffic
    if (
        cmd.side not in _SIDES
        or cmd.type not in _TYPES
        or cmd.time_in_force not in _TIFS
        or cmd.stp not in _STPS
    ):
        return "invalid_order", "unknown side, type, time_in_force or stp"
    cid = cmd.client_order_id
    if cid is not None and not (0 < len(cid) <= MAX_CLIENT_ORDER_ID and cid.isprintable()):
        return "invalid_order", f"client_order_id must be 1..{MAX_CLIENT_ORDER_ID} characters"
    wrong = _combination(cmd)
    if wrong is not None:
        return "invalid_order", wrong
    stop = cmd.stop_price
    if (price is not None and not 0 < price <= MAX_UNITS) or (
        stop is not None and not 0 < stop <= MAX_UNITS
    ):
        return "invalid_price", f"price and stop_price must be 1 to {MAX_UNITS} ticks"
    quote_amount = cmd.quote_amount
    if (quantity is not None and not 0 < quantity <= MAX_UNITS) or (
        quote_amount is not None and not 0 < quote_amount <= MAX_UNITS
    ):
        return "invalid_quantity", f"quantity and quote_amount must be 1 to {MAX_UNITS} units"
    return None
