"""Settings: one frozen object, read once at start-up from CLI options and the environment.

Every setting is both an environment variable and a CLI option (``PORT`` / ``--port``); a CLI
option wins over the environment, which wins over the default. This is the only module that
reads the environment. A bad value raises ``ConfigError`` with one line naming the setting.
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from memetrade.domain.accounts import InvalidSignup, normalize_email
from memetrade.domain.candles import CandleRules
from memetrade.domain.symbols import SymbolSpec, parse_symbol_spec

__all__ = ["ROLES", "SETTINGS", "ConfigError", "Setting", "Settings", "load_settings"]


class ConfigError(Exception):
    """A setting has an invalid value; the message is one line fit for a terminal."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    symbols: tuple[SymbolSpec, ...]
    mock_data: bool
    mock_data_interval_ms: int
    mock_seed: int
    backfill: bool
    max_connections: int
    history_limit: int
    max_trade_age_s: int
    database_url: str
    ingest_token: str | None
    log_level: str
    # Scale-out (docs/deploy.md); the defaults are the embedded single process.
    role: str = "all"
    bus_url: str | None = None
    redis_url: str | None = None
    # The Binance-compatible API's quote asset (api/binance*.py).
    quote_asset: str = "USDT"
    # Accounts (services/auth.py): session tokens, the first admin, rate limits.
    jwt_secret: str | None = None
    jwt_ttl_s: int = 86_400
    admin_email: str | None = None
    rate_limit_per_min: int = 100
    signin_max_failures: int = 5
    # The exchange (services/exchange.py): order books and balances, in ROLE=all.
    exchange: bool = True
    min_notional: str = "1"
    snapshot_every: int = 100_000
    # What the mock generator drives (services/market_sim.py): "book" or "trades".
    mock_mode: str = "book"
    # (asset, amount) credited to every new user (services/demo_balances.py); empty: none.
    demo_balances: tuple[tuple[str, str], ...] = ()

    @property
    def rules(self) -> CandleRules:
        return CandleRules(
            max_trade_age_ms=self.max_trade_age_s * 1000, history_limit=self.history_limit
        )


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not 1/0 (or true/false)")


def _symbols(text: str) -> tuple[SymbolSpec, ...]:
    specs = tuple(parse_symbol_spec(part) for part in text.split(",") if part.strip())
    if not specs:
        raise ValueError("at least one symbol is required")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError("a symbol is listed twice")
    return specs


def _database_url(text: str) -> str:
    if text.startswith("sqlite:///") and text != "sqlite:///":
        return text
    if text.startswith(("postgresql://", "postgres://")):
        # A malformed port fails here; libpq parses the rest when the store opens.
        try:
            urlsplit(text).port  # noqa: B018 - evaluated for the ValueError it raises.
        except ValueError:
            raise ValueError("the port is not a number from 0 to 65535") from None
        return text
    raise ValueError(
        "expected sqlite:///path/to/file.db (a relative path after three slashes)"
        " or postgresql://user@host:port/dbname"
    )


def _log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in ("critical", "error", "warning", "info", "debug"):
        raise ValueError(f"{text!r} is not one of critical, error, warning, info, debug")
    return level


def _token(text: str) -> str | None:
    if not text:
        return None
    if len(text) < 16:
        raise ValueError("must be at least 16 characters (or empty to disable ingest)")
    return text


ROLES = ("all", "ingest", "aggregate", "api")


def _role(text: str) -> str:
    role = text.strip().lower()
    if role not in ROLES:
        raise ValueError(f"{text!r} is not one of {', '.join(ROLES)}")
    return role


def _url(*schemes: str) -> Callable[[str], str | None]:
    def parse(text: str) -> str | None:
        if not text:
            return None
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - evaluated for the ValueError it raises.
        except ValueError:
            raise ValueError("the port is not a number from 0 to 65535") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected {' or '.join(s + '://HOST:PORT' for s in schemes)}")
        return text

    return parse


def _quote_asset(text: str) -> str:
    asset = text.strip().upper()
    if not asset or not asset.isascii() or not asset.isalnum() or len(asset) > 10:
        raise ValueError(f"{text!r} is not an asset name (1..10 letters and digits, like USDT)")
    return asset


def _jwt_secret(text: str) -> str | None:
    if not text:
        return None
    # HS256 keys shorter than the hash output weaken it (RFC 7518, section 3.2).
    if len(text.encode()) < 32:
        raise ValueError("must be at least 32 bytes (or empty to generate one at start)")
    return text


def _email(text: str) -> str | None:
    if not text:
        return None
    try:
        return normalize_email(text)
    except InvalidSignup as exc:
        raise ValueError(exc.message) from None


def _host(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{text!r} is not a host name or address")
    return text


MOCK_MODES = ("book", "trades")


def _mock_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in MOCK_MODES:
        raise ValueError(f"{text!r} is not one of {', '.join(MOCK_MODES)}")
    return mode


def _min_notional(text: str) -> str:
    try:
        value = Decimal(text.strip())
    except ArithmeticError:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ValueError("must be a number >= 0")
    return text.strip()


def _balances(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        asset, _, amount = item.partition(":")
        asset = _quote_asset(asset)
        try:
            value = Decimal(amount.strip())
        except ArithmeticError:
            raise ValueError(f"{item!r}: expected ASSET:AMOUNT, like USDT:10000") from None
        if not value.is_finite() or value <= 0:
            raise ValueError(f"{item!r}: the amount must be a positive number")
        pairs.append((asset, amount.strip()))
    if len({asset for asset, _ in pairs}) != len(pairs):
        raise ValueError("an asset is listed twice")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Setting:
    env: str
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def option(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("HOST", "host", "127.0.0.1", _host, "Address to listen on."),
    Setting("PORT", "port", "3000", _int(0, 65535), "TCP port to listen on (0: any free port)."),
    Setting(
        "SYMBOLS",
        "symbols",
        "PEPE,DOGE,SHIB,FLOKI",
        _symbols,
        "Comma-separated symbols; each NAME (preset or defaults) or NAME:tick:lot[:price].",
    ),
    Setting("MOCK_DATA", "mock_data", "1", _flag, "1: run the mock trade generator; 0: off."),
    Setting(
        "MOCK_DATA_INTERVAL",
        "mock_data_interval_ms",
        "100",
        _int(1, 60_000),
        "Milliseconds between generated trade ticks.",
    ),
    Setting(
        "MOCK_MODE",
        "mock_mode",
        "book",
        _mock_mode,
        "book: with the exchange on, simulated makers and takers trade through the order book;"
        " trades: generated trades go straight to market data (always so without the exchange).",
    ),
    Setting(
        "MOCK_SEED", "mock_seed", "42", _int(0, 2**63), "Seed of the mock generator.", ("--seed",)
    ),
    Setting(
        "BACKFILL",
        "backfill",
        "1",
        _flag,
        "1: with MOCK_DATA, fill an empty database with generated history at first start.",
    ),
    Setting(
        "MAX_CONNECTIONS",
        "max_connections",
        "10000",
        _int(1, 1_000_000),
        "Maximum concurrent WebSocket connections.",
    ),
    Setting(
        "HISTORY_LIMIT",
        "history_limit",
        "1000",
        _int(1, 1_000_000),
        "Candles kept in memory per symbol and interval; older ones come from storage.",
    ),
    Setting(
        "MAX_TRADE_AGE",
        "max_trade_age_s",
        "300",
        _int(0, 86_400),
        "Seconds a trade may be late and still revise its candles; older ones are refused.",
    ),
    Setting(
        "DATABASE_URL",
        "database_url",
        "sqlite:///data/memetrade.db",
        _database_url,
        "Where trades and candles are stored: sqlite:///FILE or postgresql://USER@HOST/DB.",
    ),
    Setting(
        "INGEST_TOKEN",
        "ingest_token",
        "",
        _token,
        "Bearer token required by POST /internal/trades (empty: ingest disabled).",
    ),
    Setting("LOG_LEVEL", "log_level", "info", _log_level, "critical, error, warning, info, debug."),
    Setting(
        "QUOTE_ASSET",
        "quote_asset",
        "USDT",
        _quote_asset,
        "Quote asset of the Binance-compatible API: PEPE is served there as PEPE<QUOTE_ASSET>.",
    ),
    Setting(
        "ROLE",
        "role",
        "all",
        _role,
        "all: everything in one process; ingest: POST /internal/trades onto the bus;"
        " aggregate: candles of SYMBOLS from the bus into storage; api: REST and WebSocket.",
    ),
    Setting(
        "BUS_URL",
        "bus_url",
        "",
        _url("nats"),
        "nats://HOST:PORT: trades and candle updates over NATS JetStream (empty: in-process).",
    ),
    Setting(
        "REDIS_URL",
        "redis_url",
        "",
        _url("redis", "rediss"),
        "redis://HOST:PORT/DB: state shared by API instances (WebSocket cap, rate limits).",
    ),
    Setting(
        "JWT_SECRET",
        "jwt_secret",
        "",
        _jwt_secret,
        "Key signing session tokens (HS256, >= 32 bytes; empty: random at each start).",
    ),
    Setting(
        "JWT_TTL_S",
        "jwt_ttl_s",
        "86400",
        _int(1, 366 * 86_400),
        "Seconds a session token stays valid.",
    ),
    Setting(
        "ADMIN_EMAIL",
        "admin_email",
        "",
        _email,
        "The user who signs up with this email is an admin (empty: nobody).",
    ),
    Setting(
        "RATE_LIMIT_PER_MIN",
        "rate_limit_per_min",
        "100",
        _int(1, 1_000_000),
        "Requests per minute per API key, user or client address on account routes.",
    ),
    Setting(
        "SIGNIN_MAX_FAILURES",
        "signin_max_failures",
        "5",
        _int(1, 1000),
        "Failed sign-ins per email and address in 15 minutes before sign-in is refused.",
    ),
    Setting(
        "EXCHANGE",
        "exchange",
        "1",
        _flag,
        "1: run the exchange (order books, balances, matching) in ROLE=all; 0: market data only.",
    ),
    Setting(
        "MIN_NOTIONAL",
        "min_notional",
        "1",
        _min_notional,
        "Smallest order value accepted by the exchange, in the quote asset (price x quantity).",
    ),
    Setting(
        "SNAPSHOT_EVERY",
        "snapshot_every",
        "100000",
        _int(1, 100_000_000),
        "Exchange commands between two snapshots (recovery replays at most this many).",
    ),
    Setting(
        "DEMO_BALANCES",
        "demo_balances",
        "USDT:10000,PEPE:1000000000,DOGE:50000,SHIB:100000000,FLOKI:10000000",
        _balances,
        "ASSET:AMOUNT,... credited to every new user at sign-up (empty: nothing).",
    ),
)


def load_settings(
    options: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from CLI ``options`` (keyed by env name, None = not given), then the
    environment, then defaults. Raise ``ConfigError`` on the first invalid value."""
    options = options or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        given = options.get(setting.env)
        source, text = (
            (setting.option, given)
            if given is not None
            else (setting.env, environ[setting.env])
            if setting.env in environ
            else ("default of " + setting.env, setting.default)
        )
        try:
            values[setting.field] = setting.parse(text)
        except ValueError as exc:
            raise ConfigError(f"invalid {source}={text!r}: {exc}") from None
    if values["role"] != "all" and values["bus_url"] is None:
        raise ConfigError(
            f"ROLE={values['role']} needs BUS_URL=nats://HOST:PORT: separate processes meet on"
            " the bus (the in-process bus serves ROLE=all only)"
        )
    return Settings(**values)
