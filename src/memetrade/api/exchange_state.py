"""Operating the exchange (admins only): where its journal stands, the state's fingerprint, and
a snapshot on demand (before planned maintenance, say, so the restart replays little)."""

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from memetrade.api.auth_routes import CurrentPrincipal
from memetrade.api.context import context
from memetrade.api.exchange_deps import exchange
from memetrade.services.auth import AuthService, Principal
from memetrade.services.exchange import ExchangeService

__all__ = ["router"]

router = APIRouter()


def _exchange_for_admin(request: Request, principal: Principal) -> ExchangeService:
    AuthService.require_admin(principal)
    return exchange(context(request))


def _state(exchange: ExchangeService) -> Response:
    body = {
        "seq": exchange.seq,
        "snapshot_seq": exchange.snapshot_seq,
        # SHA-256 of the whole state (books, balances, fee volumes, counters): equal after a
        # restart if recovery rebuilt exactly what was journaled.
        "state_hash": exchange.engine.state_hash(),
        "recovered_commands": exchange.recovered_commands,
        "recovery_ms": round(exchange.recovery_s * 1000, 1),
    }
    return Response(msgspec.json.encode(body), media_type="application/json")


@router.get("/api/v1/admin/exchange", tags=["admin"])
async def exchange_state(request: Request, principal: CurrentPrincipal) -> Response:
    """The journal position, last snapshot and state hash of the exchange."""
    return _state(_exchange_for_admin(request, principal))


@router.post("/api/v1/admin/exchange/snapshot", tags=["admin"])
async def take_snapshot(request: Request, principal: CurrentPrincipal) -> Response:
    """Take a snapshot now; answers the state once it is stored."""
    exchange = _exchange_for_admin(request, principal)
    await exchange.snapshot()
    return _state(exchange)
