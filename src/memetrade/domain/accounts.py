"""Accounts: users, API keys and audit entries as stored, and the rules a sign-up must meet.

Plain records and pure checks; hashing, tokens and storage live in ``services/`` and
``adapters/``.
"""

from dataclasses import dataclass
from typing import Final, Literal

from memetrade.domain.errors import DomainError

__all__ = [
    "AUDIT_ACTIONS",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "ApiKey",
    "AuditEntry",
    "InvalidEmail",
    "InvalidSignup",
    "Role",
    "User",
    "WeakPassword",
    "check_password",
    "normalize_email",
]

Role = Literal["user", "admin"]

# Every action the audit log records; trading adds its own entries under these names.
AUDIT_ACTIONS: Final = frozenset(
    {
        "signup",
        "signin",
        "signin_failed",
        "signout",
        "api_key_created",
        "api_key_revoked",
        "order_placed",
        "order_canceled",
        "deposit",
        "withdraw",
        "user_disabled",
        "user_enabled",
    }
)

MIN_PASSWORD_LENGTH: Final = 10
# Argon2 takes any length, but hashing a megabyte per attempt would be a cheap way to burn CPU.
MAX_PASSWORD_LENGTH: Final = 1024
_MAX_EMAIL_LENGTH: Final = 254  # RFC 5321's limit on a forward path, less the angle brackets.
_MAX_LOCAL_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class User:
    """A registered user. ``email`` is stored lower-cased; ``created_at`` is epoch ms."""

    id: int
    email: str
    password_hash: str
    role: Role
    created_at: int
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the secret itself, only its SHA-256 (``secret_hash``).

    ``prefix`` identifies the key and is shown to its owner; times are epoch ms.
    """

    id: int
    user_id: int
    name: str
    prefix: str
    secret_hash: str
    created_at: int
    revoked_at: int | None = None
    last_used_at: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log. ``actor`` is the user id, None when nobody is signed in
    (a failed sign-in for an unknown email); ``detail`` is a JSON object as text."""

    id: int
    ts: int
    actor: int | None
    action: str
    ip: str | None
    detail: str


class InvalidSignup(DomainError):
    """An email address or password that sign-up refuses."""

    code = "invalid_signup"


class InvalidEmail(InvalidSignup):
    code = "invalid_email"


class WeakPassword(InvalidSignup):
    code = "weak_password"


def normalize_email(text: str) -> str:
    """``text`` trimmed and lower-cased, once it looks like a deliverable address; raise
    ``InvalidEmail`` otherwise.

    Deliberately modest: one ``@``, a local part without spaces, a domain of dot-separated
    letter/digit/hyphen labels. Whether the mailbox exists only a sent mail can tell.
    """
    email = text.strip().lower()
    local, at, domain = email.rpartition("@")
    labels = domain.split(".")
    valid = (
        bool(at)
        and 0 < len(local) <= _MAX_LOCAL_LENGTH
        and len(email) <= _MAX_EMAIL_LENGTH
        and "@" not in local
        and email.isascii()
        and not any(c.isspace() or c in '<>()[]\\,;:"' for c in local)
        and len(labels) >= 2
        and all(
            label
            and len(label) <= 63
            and label.replace("-", "").isalnum()
            and not label.startswith("-")
            and not label.endswith("-")
            for label in labels
        )
    )
    if not valid:
        raise InvalidEmail(f"{text!r} is not an email address")
    return email


def check_password(password: str) -> None:
    """Raise ``WeakPassword`` unless ``password`` has
    ``MIN_PASSWORD_LENGTH`` to ``MAX_PASSWORD_LENGTH`` characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
