"""Accounts: sign-up, sign-in and sign-out, who a request is (``Principal``), API keys, and the
audit log, over an ``AccountStore``.

Every sign-up, sign-in (and failed one), sign-out and key change is written to the audit log;
other services record their own actions (orders, deposits) through ``record``.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from memetrade.domain.accounts import (
    ApiKey,
    AuditEntry,
    Role,
    User,
    check_password,
    normalize_email,
)
from memetrade.ports import AccountStore, Clock, EmailTaken
from memetrade.services.credentials import (
    Conflict,
    Forbidden,
    IssuedToken,
    NotFound,
    Passwords,
    TokenIssuer,
    Unauthorized,
    new_api_key,
    parse_api_key,
    secret_matches,
)
from memetrade.services.rate_limit import SigninThrottle

__all__ = ["AuthService", "NewApiKey", "OnSignup", "Principal", "SignedIn"]

log = logging.getLogger(__name__)

OnSignup = Callable[[int], Awaitable[None]]
"""Called with a new user's id once the user is stored (the exchange credits demo balances)."""

# ``last_used_at`` is written at most this often per key: a timestamp to the minute is what an
# owner needs, and a write per request would double the storage load of API-key traffic.
_TOUCH_EVERY_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the user, their role, and the API key used (None for a
    session token)."""

    user_id: int
    role: Role
    api_key_id: int | None = None


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    token: IssuedToken


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: ``key`` is the only time its secret is seen."""

    key: str
    record: ApiKey


class AuthService:
    """Accounts over ``store``. ``admin_email`` (normalised) becomes an admin at sign-up."""

    def __init__(
        self,
        store: AccountStore,
        tokens: TokenIssuer,
        throttle: SigninThrottle,
        clock: Clock,
        *,
        passwords: Passwords | None = None,
        admin_email: str | None = None,
        on_signup: OnSignup | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self._throttle = throttle
        self._clock = clock
        self._passwords = passwords or Passwords()
        self._admin_email = None if admin_email is None else normalize_email(admin_email)
        self._on_signup = on_signup

    # -- sessions -------------------------------------------------------------------------------

    async def signup(self, email: str, password: str, ip: str | None) -> SignedIn:
        """Register and sign in; ``InvalidSignup`` for a bad email or weak password,
        ``Conflict`` (``email_taken``) when the email is registered."""
        email = normalize_email(email)
        check_password(password)
        password_hash = await self._passwords.hash(password)
        role: Role = "admin" if email == self._admin_email else "user"
        try:
            user = await self.store.create_user(email, password_hash, role, self._clock.now_ms())
        except EmailTaken:
            raise Conflict("email_taken", f"{email} is already registered") from None
        await self.record(user.id, "signup", ip, role=role)
        if self._on_signup is not None:
            await self._on_signup(user.id)
        return SignedIn(user, self.tokens.issue(user.id))

    async def signin(self, email: str, password: str, ip: str | None) -> SignedIn:
        """A new session token; ``Unauthorized`` for a wrong email or password (the same
        answer for both), ``RateLimited`` after too many failures, ``Forbidden`` when the
        account is disabled."""
        email = email.strip().lower()
        await self._throttle.check(email, ip)
        user = await self.store.user_by_email(email)
        matched = await self._passwords.verify(
            None if user is None else user.password_hash, password
        )
        if user is None or not matched:
            await self._throttle.failed(email, ip)
            await self.record(None if user is None else user.id, "signin_failed", ip, email=email)
            raise Unauthorized("unauthorized", "wrong email or password")
        await self._throttle.succeeded(email, ip)
        if user.disabled:
            raise Forbidden("forbidden", "this account is disabled")
        if self._passwords.needs_rehash(user.password_hash):
            await self.store.set_password_hash(user.id, await self._passwords.hash(password))
        await self.record(user.id, "signin", ip)
        return SignedIn(user, self.tokens.issue(user.id))

    async def signout(self, token: str, ip: str | None) -> None:
        """Revoke a session token until it expires."""
        claims = self.tokens.verify(token)
        now = self._clock.now_ms()
        await self.store.revoke_token(claims.jti, claims.expires_at, now)
        await self.record(claims.user_id, "signout", ip)

    # -- who is asking --------------------------------------------------------------------------

    async def principal_from_token(self, token: str) -> Principal:
        claims = self.tokens.verify(token)
        if await self.store.is_token_revoked(claims.jti):
            raise Unauthorized("invalid_token", "token was signed out; sign in again")
        user = await self._active_user(claims.user_id)
        return Principal(user.id, user.role)

    async def principal_from_api_key(self, key: str) -> Principal:
        parsed = parse_api_key(key)
        if parsed is None:
            raise Unauthorized("unauthorized", "malformed API key")
        prefix, secret = parsed
        record = await self.store.api_key_by_prefix(prefix)
        # The secret is checked before anything about the key is told, revocation included.
        if record is None or not secret_matches(secret, record.secret_hash):
            raise Unauthorized("unauthorized", "unknown API key")
        if record.revoked_at is not None:
            raise Unauthorized("api_key_revoked", f"API key {prefix} was revoked")
        user = await self._active_user(record.user_id)
        now = self._clock.now_ms()
        if record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY_MS:
            await self.store.touch_api_key(record.id, now)
        return Principal(user.id, user.role, record.id)

    async def _active_user(self, user_id: int) -> User:
        user = await self.store.user_by_id(user_id)
        if user is None:
            raise Unauthorized("invalid_token", "the user of this credential no longer exists")
        if user.disabled:
            raise Forbidden("forbidden", "this account is disabled")
        return user

    async def user(self, principal: Principal) -> User:
        return await self._active_user(principal.user_id)

    # -- API keys -------------------------------------------------------------------------------

    @staticmethod
    def _session_only(principal: Principal) -> None:
        # A leaked key must not be able to mint or revoke keys: that takes a signed-in session.
        if principal.api_key_id is not None:
            raise Forbidden("forbidden", "API keys are managed with a session token, not a key")

    async def create_api_key(self, principal: Principal, name: str, ip: str | None) -> NewApiKey:
        """A new key named ``name`` (the API checks its length) for the principal's user."""
        self._session_only(principal)
        key, prefix, secret_hash = new_api_key()
        record = await self.store.create_api_key(
            principal.user_id, name, prefix, secret_hash, self._clock.now_ms()
        )
        await self.record(principal.user_id, "api_key_created", ip, key_id=record.id, prefix=prefix)
        return NewApiKey(key, record)

    async def api_keys(self, principal: Principal) -> list[ApiKey]:
        return await self.store.api_keys_of(principal.user_id)

    async def revoke_api_key(self, principal: Principal, key_id: int, ip: str | None) -> ApiKey:
        self._session_only(principal)
        record = await self.store.revoke_api_key(principal.user_id, key_id, self._clock.now_ms())
        if record is None:
            raise NotFound("not_found", f"you have no API key {key_id}")
        await self.record(principal.user_id, "api_key_revoked", ip, key_id=key_id)
        return record

    # -- administration and audit ---------------------------------------------------------------

    @staticmethod
    def require_admin(principal: Principal) -> None:
        if principal.role != "admin":
            raise Forbidden("forbidden", "this needs an admin")

    async def set_disabled(
        self, principal: Principal, user_id: int, disabled: bool, ip: str | None
    ) -> User:
        self.require_admin(principal)
        user = await self.store.set_disabled(user_id, disabled)
        if user is None:
            raise NotFound("not_found", f"there is no user {user_id}")
        action = "user_disabled" if disabled else "user_enabled"
        await self.record(principal.user_id, action, ip, user_id=user_id)
        return user

    async def record(self, actor: int | None, action: str, ip: str | None, **detail: Any) -> None:
        """Append ``action`` by ``actor`` to the audit log, ``detail`` as a JSON object."""
        detail_json = msgspec.json.encode(detail).decode()
        await self.store.record(self._clock.now_ms(), actor, action, ip, detail_json)

    async def audit_entries(
        self,
        principal: Principal,
        *,
        actor: int | None,
        action: str | None,
        start: int | None,
        end: int | None,
        limit: int,
    ) -> list[AuditEntry]:
        self.require_admin(principal)
        return await self.store.audit_entries(
            actor=actor, action=action, start=start, end=end, limit=limit
        )
