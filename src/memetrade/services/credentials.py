"""Credentials: password hashes (argon2), session tokens (JWT, HS256) and API keys, and the
errors authentication raises.

Nothing here touches storage; ``services/auth.py`` combines these with an ``AccountStore``.
"""

import asyncio
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Final

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from memetrade.ports import Clock

__all__ = [
    "API_KEY_PREFIX",
    "AuthError",
    "Conflict",
    "Forbidden",
    "IssuedToken",
    "NotFound",
    "Passwords",
    "RateLimited",
    "TokenClaims",
    "TokenIssuer",
    "Unauthorized",
    "hash_secret",
    "new_api_key",
    "parse_api_key",
    "secret_matches",
]

API_KEY_PREFIX: Final = "mt_"
_KEY_ID_HEX: Final = 16  # 64 random bits: the public part that finds the key's row.
_SECRET_BYTES: Final = 32
_ALGORITHM: Final = "HS256"


class AuthError(Exception):
    """Base of the errors of authentication and accounts; ``code`` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Unauthorized(AuthError):
    """No credentials, or credentials that prove nothing (codes ``unauthorized``,
    ``invalid_token``, ``api_key_revoked``)."""


class Forbidden(AuthError):
    """Known caller, not allowed (code ``forbidden``)."""


class Conflict(AuthError):
    """The thing exists already (code ``email_taken``)."""


class NotFound(AuthError):
    """No such thing, or not the caller's (code ``not_found``)."""


class RateLimited(AuthError):
    """Too many requests; retry after ``retry_after_s`` seconds (code ``rate_limited``)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__("rate_limited", message)
        self.retry_after_s = retry_after_s


class Passwords:
    """Argon2id hashing with argon2-cffi's defaults (RFC 9106's second recommended setting).

    Hashing costs 64 MiB and, on this project's 2-core machine, about a third of a second of
    CPU by design (a guess costs an attacker as much), so it runs in a worker thread, never on
    the event loop.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the email is unknown, so a sign-in takes as long whether or not
        # the account exists (no user enumeration by timing).
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash`` (None: compare with a decoy, fail)."""

        def run() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._decoy, password)
            except (VerificationError, InvalidHashError):
                return False

        matched = await asyncio.to_thread(run)
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored_hash)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int  # epoch ms


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    jti: str
    expires_at: int  # epoch ms


class TokenIssuer:
    """Signs and checks session tokens: JWT, HS256, claims ``sub`` (the user id as text, as
    RFC 7519 wants), ``iat``, ``exp`` (epoch seconds) and ``jti`` (random, for sign-out).

    Expiry is checked against ``clock``, not PyJWT's own reading of the time, so tests can move
    time; a token is expired from its ``exp`` second on.
    """

    # Verified tokens, by their text: a client sends the same token with every request, and
    # decoding and checking the signature was a tenth of an order's CPU. Only valid signatures
    # are cached; expiry is checked on every use.
    _VERIFIED_MAX = 10_000

    def __init__(self, secret: str, ttl_s: int, clock: Clock) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock
        self._verified: dict[str, TokenClaims] = {}

    def issue(self, user_id: int) -> IssuedToken:
        now_s = self._clock.now_ms() // 1000
        jti = uuid.uuid4().hex
        claims = {"sub": str(user_id), "iat": now_s, "exp": now_s + self.ttl_s, "jti": jti}
        token = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        return IssuedToken(token, jti, (now_s + self.ttl_s) * 1000)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token this issuer signed; ``Unauthorized`` (``invalid_token``) when
        it is forged, malformed or expired, with a message saying which."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= self._VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at <= self._clock.now_ms():
            raise Unauthorized("invalid_token", "token has expired; sign in again")
        return claims

    def _decode(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={
                    "require": ["sub", "iat", "exp", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise Unauthorized("invalid_token", "token signature is invalid (forged)") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("invalid_token", f"token is malformed: {exc}") from None
        sub, exp, jti = claims["sub"], claims["exp"], claims["jti"]
        if not (isinstance(sub, str) and sub.isdigit() and isinstance(exp, int)):
            raise Unauthorized("invalid_token", "token claims are malformed")
        if not isinstance(jti, str):
            raise Unauthorized("invalid_token", "token claims are malformed")
        return TokenClaims(int(sub), jti, exp * 1000)


def new_api_key() -> tuple[str, str, str]:
    """A new key as ``(key, prefix, secret_hash)``: ``key`` is ``mt_<prefix>_<secret>``, shown
    to its owner once; ``prefix`` finds it; only ``secret_hash`` is stored."""
    prefix = secrets.token_hex(_KEY_ID_HEX // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{API_KEY_PREFIX}{prefix}_{secret}", prefix, hash_secret(secret)


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a key shaped like ``new_api_key``'s, None otherwise."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = key.removeprefix(API_KEY_PREFIX).partition("_")
    if not sep or len(prefix) != _KEY_ID_HEX or not secret or len(secret) > 128:
        return None
    return prefix, secret


def hash_secret(secret: str) -> str:
    """SHA-256 of an API key's secret, hex.

    A fast hash is right here, unlike for passwords: the secret is 256 random bits, so even a
    stolen table cannot be brute-forced however fast the hash, whereas a slow hash (argon2's
    third of a second) would be paid on every API request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), secret_hash)
