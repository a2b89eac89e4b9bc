"""Demo balances: what a new user is credited at sign-up so they can trade at once.

Amounts are decimal text in each asset's own unit (``"USDT:10000"``), converted exactly when the
service starts, so a bad amount fails at start-up rather than at the first sign-up. Assets the
exchange does not trade (a symbol left out of ``SYMBOLS``) are skipped.
"""

import logging
from collections.abc import Sequence

from memetrade.domain.exchange.commands import Deposit
from memetrade.domain.numbers import parse_units
from memetrade.services.auth import OnSignup
from memetrade.services.exchange import ExchangeService

__all__ = ["demo_credit"]

log = logging.getLogger(__name__)


def demo_credit(service: ExchangeService, balances: Sequence[tuple[str, str]]) -> OnSignup | None:
    """A sign-up hook depositing ``balances`` (``(asset, amount)``) to each new user; None
    when there is nothing to credit. Raise ``ValueError`` for an amount that is not a whole
    number of the asset's units."""
    amounts: list[tuple[str, int]] = []
    for asset, amount in balances:
        try:
            decimals = service.engine.asset_decimals(asset)
        except KeyError:
            log.info("DEMO_BALANCES: %s is not traded here; not credited", asset)
            continue
        amounts.append((asset, parse_units(amount, decimals, f"{asset} amount")))
    if not amounts:
        return None

    async def credit(user_id: int) -> None:
        for asset, units in amounts:
            outcome = await service.submit(Deposit(user_id, asset, units))
            if not outcome.ok:
                log.error("demo deposit of %s to user %d refused: %s", asset, user_id, outcome.code)

    return credit
