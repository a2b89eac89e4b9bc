"""``WS /ws``: price, SMA-20 and recommendation of every symbol, and signal events.

Messages carry a ``type``:

* ``snapshot``: ``{"type", "symbol", "interval", "price", "sma20", "signal", "timestamp"}``,
  one per symbol on connect, then whenever it changes, at most every 250 ms per symbol
  (coalesced: a slow client gets the latest snapshot of each symbol, never a backlog);
* ``signal``: the same fields plus ``previous``, sent the moment the recommendation of a
  symbol changes (a crossover of price and SMA-20, or leaving NEUTRAL). Never coalesced.

``?interval=`` (default 1m) picks the candles the SMA-20 is computed over.
"""

from fastapi import APIRouter, WebSocket

from memetrade.api.market_streams import current_snapshots, market_topic
from memetrade.api.ws import CLOSE_BAD_REQUEST, _ctx, _refuse, _serve
from memetrade.domain.errors import DomainError
from memetrade.domain.intervals import parse_interval

__all__ = ["router"]

router = APIRouter()


@router.websocket("/ws")
async def ws_market(websocket: WebSocket) -> None:
    """Snapshots and signal events of every symbol (seed 003's stream)."""
    ctx = _ctx(websocket)
    try:
        interval = parse_interval(websocket.query_params.get("interval", "1m"))
    except DomainError as exc:
        await _refuse(websocket, CLOSE_BAD_REQUEST, exc.message)
        return
    await _serve(websocket, market_topic(interval), current_snapshots(ctx, interval))
