"""The domain's one error tree. Each error carries a stable machine-readable ``code``."""

__all__ = [
    "DomainError",
    "InvalidIndicator",
    "InvalidTrade",
    "TradeTooNew",
    "TradeTooOld",
    "UnknownIndicator",
    "UnknownInterval",
    "UnknownSymbol",
]


class DomainError(Exception):
    """Base of every error the core raises; ``code`` is stable and safe to show to clients."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownSymbol(DomainError):
    code = "unknown_symbol"


class UnknownInterval(DomainError):
    code = "unknown_interval"


class InvalidTrade(DomainError):
    code = "invalid_trade"


class TradeTooOld(InvalidTrade):
    code = "trade_too_old"


class TradeTooNew(InvalidTrade):
    code = "trade_too_new"


class InvalidIndicator(DomainError):
    """An indicator parameter is unknown or out of range."""

    code = "invalid_parameter"


class UnknownIndicator(InvalidIndicator):
    code = "unknown_indicator"
