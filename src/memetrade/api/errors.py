"""The API's error tree and the one place that maps errors to HTTP responses.

Every error answers ``{"error": {"code", "message"}}`` (plus ``details`` where there are
several), with a stable machine-readable ``code``.
"""

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from memetrade.domain.accounts import InvalidSignup
from memetrade.domain.errors import DomainError, InvalidTrade, UnknownSymbol
from memetrade.ports import BusError, StorageError
from memetrade.services.credentials import (
    AuthError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
)

__all__ = ["ApiError", "DialectError", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
_AUTH_STATUS: dict[type[AuthError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
}


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class DialectError(Exception):
    """An error in a foreign dialect's own format (Binance's ``{"code": -1121, "msg": …}``,
    UDF's ``{"s": "error", "errmsg": …}``): ``body`` is answered as it is, with ``status``."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(body.decode())
        self.status, self.body = status, body


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response(
        msgspec.json.encode({"error": error}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _domain_status(exc: DomainError) -> int:
    if isinstance(exc, UnknownSymbol):
        return 404
    return 422 if isinstance(exc, InvalidTrade | InvalidSignup) else 400


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    async def on_domain_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return error_response(_domain_status(exc), exc.code, exc.message)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return error_response(422, "invalid_request", "the request is not valid", details)

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    async def on_storage_error(_: Request, exc: Exception) -> Response:
        log.error("storage unavailable: %s", exc)
        return error_response(503, "storage_unavailable", "storage is not available; retry")

    async def on_dialect_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, DialectError)
        return Response(exc.body, status_code=exc.status, media_type="application/json")

    app.add_exception_handler(DialectError, on_dialect_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(StorageError, on_storage_error)

    async def on_bus_error(_: Request, exc: Exception) -> Response:
        log.error("bus unavailable: %s", exc)
        return error_response(503, "bus_unavailable", "the message bus is not available; retry")

    app.add_exception_handler(BusError, on_bus_error)

    async def on_auth_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        status = _AUTH_STATUS[type(exc)]
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return error_response(status, exc.code, exc.message, headers=headers)

    app.add_exception_handler(AuthError, on_auth_error)
