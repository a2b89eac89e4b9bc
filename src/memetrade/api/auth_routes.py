"""Accounts over HTTP: sign-up, sign-in, sign-out, the caller's user, API keys, and the admin's
audit log; and ``CurrentPrincipal``, the dependency that authenticates and rate-limits a
request for any route that acts for a user (trading routes included).

A request proves who it is with ``X-API-Key: mt_…``, or ``Authorization: Bearer <token>``, or
the session cookie that sign-in sets, tried in that order; a credential that is present but bad
is refused, never skipped for the next one. The cookie is HTTP-only and ``SameSite=Lax``:
scripts cannot read it and other sites' forms and scripts cannot send it with a POST.
"""

from typing import Annotated, Any, Final, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.requests import HTTPConnection
from starlette.responses import Response

from memetrade.api.context import AppContext, context
from memetrade.api.errors import ApiError
from memetrade.api.params import limit_param, time_param
from memetrade.domain.accounts import ApiKey, AuditEntry, User
from memetrade.services.auth import AuthService, Principal, SignedIn
from memetrade.services.credentials import Unauthorized
from memetrade.services.rate_limit import RateLimiter, identity

__all__ = ["COOKIE", "CurrentPrincipal", "authenticate", "current_principal", "router"]

router = APIRouter()

COOKIE: Final = "memetrade_session"
_MAX_BODY: Final = 64 * 1024
_AUDIT_LIMIT: Final = 1000
_S = TypeVar("_S")


class _Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: str


class _NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class _UserChange(msgspec.Struct, forbid_unknown_fields=True):
    disabled: bool


# -- plumbing -------------------------------------------------------------------------------------


def _services(ctx: AppContext) -> tuple[AuthService, RateLimiter]:
    if ctx.auth is None or ctx.rate_limiter is None:
        raise ApiError(404, "not_found", "accounts are not served by this process")
    return ctx.auth, ctx.rate_limiter


def _ip(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def _body(request: Request, kind: type[_S]) -> _S:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise ApiError(413, "body_too_large", f"body is larger than {_MAX_BODY} bytes")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _json(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "role": user.role, "created_at": user.created_at}


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def _audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "ts": entry.ts,
        "user_id": entry.actor,
        "action": entry.action,
        "ip": entry.ip,
        "detail": msgspec.json.decode(entry.detail),
    }


def session_token(request: HTTPConnection) -> str | None:
    """The bearer token, else the cookie; None when neither is sent. Serves HTTP requests and
    WebSocket handshakes alike."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("unauthorized", "expected 'Authorization: Bearer <token>'")
        return token.strip()
    return request.cookies.get(COOKIE) or None


def _with_session(response: Response, request: Request, signed_in: SignedIn, ttl_s: int) -> None:
    response.set_cookie(
        COOKIE,
        signed_in.token.token,
        max_age=ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        # Behind a TLS-terminating proxy the scheme comes from X-Forwarded-Proto (uvicorn
        # trusts it from the proxy addresses it is told to).
        secure=request.url.scheme == "https",
    )


# -- dependencies ---------------------------------------------------------------------------------


async def authenticate(request: Request) -> Principal:
    """Who the request acts for; ``Unauthorized`` (401) without a valid credential."""
    auth, _ = _services(context(request))
    key = request.headers.get("x-api-key")
    if key is not None:
        return await auth.principal_from_api_key(key.strip())
    token = session_token(request)
    if token is None:
        raise Unauthorized("unauthorized", "sign in, or send a Bearer token or an X-API-Key")
    return await auth.principal_from_token(token)


async def current_principal(request: Request) -> Principal:
    """``authenticate``, then count the request against the caller's rate limit (429)."""
    principal = await authenticate(request)
    _, limiter = _services(context(request))
    await limiter.check(identity(principal.api_key_id, principal.user_id, _ip(request)))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
"""A route parameter annotated ``CurrentPrincipal`` receives the authenticated caller."""


async def _limit_anonymous(request: Request) -> None:
    _, limiter = _services(context(request))
    await limiter.check(identity(None, None, _ip(request)))


_ANONYMOUS = [Depends(_limit_anonymous)]

# -- routes ---------------------------------------------------------------------------------------


@router.post("/api/v1/auth/signup", tags=["accounts"], dependencies=_ANONYMOUS, status_code=201)
async def signup(request: Request) -> Response:
    """Register with ``{"email", "password"}`` (at least 10 characters) and sign in: answers
    201 ``{"user"}`` and sets the session cookie. 409 ``email_taken``; 422 ``invalid_email``,
    ``weak_password``."""
    ctx = context(request)
    auth, _ = _services(ctx)
    body = await _body(request, _Credentials)
    signed_in = await auth.signup(body.email, body.password, _ip(request))
    response = _json({"user": _user_json(signed_in.user)}, 201)
    _with_session(response, request, signed_in, auth.tokens.ttl_s)
    return response


@router.post("/api/v1/auth/signin", tags=["accounts"], dependencies=_ANONYMOUS)
async def signin(request: Request) -> Response:
    """Sign in with ``{"email", "password"}``: ``{"token", "token_type": "Bearer",
    "expires_at", "user"}``, and the same token as an HTTP-only cookie. 401 for a wrong email or
    password; 429 ``rate_limited`` (with ``Retry-After``) after too many failures."""
    auth, _ = _services(context(request))
    body = await _body(request, _Credentials)
    signed_in = await auth.signin(body.email, body.password, _ip(request))
    token = signed_in.token
    response = _json(
        {
            "token": token.token,
            "token_type": "Bearer",
            "expires_at": token.expires_at,
            "user": _user_json(signed_in.user),
        }
    )
    _with_session(response, request, signed_in, auth.tokens.ttl_s)
    return response


@router.post("/api/v1/auth/signout", tags=["accounts"], status_code=204)
async def signout(request: Request, principal: CurrentPrincipal) -> Response:
    """Revoke the session token (bearer or cookie) until it expires and clear the cookie."""
    auth, _ = _services(context(request))
    token = session_token(request)
    if token is None:
        raise Unauthorized("unauthorized", "no session token to sign out (API keys are revoked)")
    await auth.signout(token, _ip(request))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/api/v1/auth/me", tags=["accounts"])
async def me(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller: ``{"user", "api_key_id"}`` (``api_key_id`` null for a session)."""
    auth, _ = _services(context(request))
    user = await auth.user(principal)
    return _json({"user": _user_json(user), "api_key_id": principal.api_key_id})


@router.post("/api/v1/auth/api-keys", tags=["accounts"], status_code=201)
async def create_api_key(request: Request, principal: CurrentPrincipal) -> Response:
    """Create a key from ``{"name"}``: 201 ``{"api_key": {…, "key"}}``. ``key`` is shown this
    once; send it as ``X-API-Key``. Needs a session (a key cannot create keys)."""
    auth, _ = _services(context(request))
    body = await _body(request, _NewKey)
    created = await auth.create_api_key(principal, body.name, _ip(request))
    return _json({"api_key": {**_key_json(created.record), "key": created.key}}, 201)


@router.get("/api/v1/auth/api-keys", tags=["accounts"])
async def list_api_keys(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller's keys, oldest first, revoked ones included; never their secrets."""
    auth, _ = _services(context(request))
    keys = await auth.api_keys(principal)
    return _json({"api_keys": [_key_json(key) for key in keys]})


@router.delete("/api/v1/auth/api-keys/{key_id}", tags=["accounts"])
async def revoke_api_key(request: Request, key_id: int, principal: CurrentPrincipal) -> Response:
    """Revoke one of the caller's keys: ``{"api_key"}`` with ``revoked_at`` set; requests
    with it then get 401 ``api_key_revoked``. 404 when the caller has no such key."""
    auth, _ = _services(context(request))
    revoked = await auth.revoke_api_key(principal, key_id, _ip(request))
    return _json({"api_key": _key_json(revoked)})


@router.get("/api/v1/admin/audit", tags=["admin"])
async def audit(request: Request, principal: CurrentPrincipal) -> Response:
    """The audit log, newest first (admins only): filters ``user_id``, ``action``, ``from``,
    ``to`` (epoch ms or ISO 8601, inclusive), ``limit`` (default 100, at most 1000)."""
    auth, _ = _services(context(request))
    query = request.query_params
    user_id = query.get("user_id")
    if user_id is not None and not user_id.isdigit():
        raise ApiError(400, "invalid_user_id", f"user_id {user_id!r} is not a user id")
    entries = await auth.audit_entries(
        principal,
        actor=None if user_id is None else int(user_id),
        action=query.get("action") or None,
        start=time_param("from", query.get("from")),
        end=time_param("to", query.get("to")),
        limit=limit_param(query.get("limit"), 100, _AUDIT_LIMIT),
    )
    return _json({"entries": [_audit_json(entry) for entry in entries]})


@router.patch("/api/v1/admin/users/{user_id}", tags=["admin"])
async def change_user(request: Request, user_id: int, principal: CurrentPrincipal) -> Response:
    """Disable or re-enable a user with ``{"disabled"}`` (admins only): a disabled user's
    tokens and keys get 403 and sign-in is refused."""
    auth, _ = _services(context(request))
    body = await _body(request, _UserChange)
    user = await auth.set_disabled(principal, user_id, body.disabled, _ip(request))
    return _json({"user": {**_user_json(user), "disabled": user.disabled}})
