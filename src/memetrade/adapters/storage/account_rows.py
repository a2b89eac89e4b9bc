"""Row shapes and the audit query shared by the account store backends."""

from collections.abc import Sequence
from typing import Any, Final

from memetrade.domain.accounts import ApiKey, AuditEntry, User

__all__ = [
    "AUDIT_COLUMNS",
    "KEY_COLUMNS",
    "USER_COLUMNS",
    "api_key_from_row",
    "audit_from_row",
    "audit_query",
    "user_from_row",
]

USER_COLUMNS: Final = "id, email, password_hash, role, created_at, disabled"
KEY_COLUMNS: Final = "id, user_id, name, prefix, secret_hash, created_at, revoked_at, last_used_at"
AUDIT_COLUMNS: Final = "id, ts, actor, action, ip, detail"


def user_from_row(row: Sequence[Any]) -> User:
    user_id, email, password_hash, role, created_at, disabled = row
    return User(user_id, email, password_hash, role, created_at, bool(disabled))


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    return ApiKey(*row)


def audit_from_row(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(*row)


def audit_query(
    mark: str,
    actor: int | None,
    action: str | None,
    start: int | None,
    end: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SELECT of ``audit_entries`` with ``mark`` as the parameter placeholder, and its
    arguments. Only the fixed condition texts below reach the SQL; values are parameters."""
    conditions: list[str] = []
    args: list[Any] = []
    for condition, value in (
        ("actor = ", actor),
        ("action = ", action),
        ("ts >= ", start),
        ("ts <= ", end),
    ):
        if value is not None:
            conditions.append(condition + mark)
            args.append(value)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # Ids grow with time, so the newest entries are the highest ids.
    sql = f"SELECT {AUDIT_COLUMNS} FROM audit_log{where} ORDER BY id DESC LIMIT {mark}"
    args.append(max(limit, 0))
    return sql, args
