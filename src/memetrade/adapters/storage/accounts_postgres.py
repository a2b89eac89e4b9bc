"""``AccountStore`` in PostgreSQL, beside the market data (connections: ``pg_conn``).

Design, and why:

* The same database, driver, pool and error mapping as ``PostgresStore`` (``pg_conn``): libpq
  URLs, a checked pool, durable commits, psycopg errors turned into ``StorageError`` (or
  ``StorageUnavailable``) with one-line messages that never carry the password.
* Its own version table, ``accounts_schema_version`` (one row per applied migration), and its
  own advisory lock: migrations run in one transaction holding it, so API instances starting
  together migrate once, and the market store's migrations neither wait for nor block them.
* Every statement is one autocommitted round trip (``INSERT ... RETURNING``, ``UPDATE ...
  RETURNING``); none needs a multi-statement transaction, so none holds a connection for long.
* A duplicate email is the unique index saying no: that ``UniqueViolation`` becomes
  ``EmailTaken``, so two sign-ups racing for one address cannot both succeed.
"""

from collections.abc import Sequence
from typing import Any, Final, LiteralString

from psycopg import errors, sql

from memetrade.adapters.storage.account_rows import (
    AUDIT_COLUMNS,
    KEY_COLUMNS,
    USER_COLUMNS,
    api_key_from_row,
    audit_from_row,
    audit_query,
    user_from_row,
)
from memetrade.adapters.storage.pg_conn import Conn, PostgresDatabase, migrate, one_line
from memetrade.domain.accounts import ApiKey, AuditEntry, Role, User
from memetrade.ports import EmailTaken

__all__ = ["PostgresAccountStore"]

# "memeacct": apart from the market store's migration lock.
_MIGRATION_LOCK: Final = 0x6D656D6561636374

_MIGRATIONS: Final[tuple[tuple[LiteralString, ...], ...]] = (
    # 1: users, API keys, revoked tokens, audit log.
    (
        """CREATE TABLE users (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email text NOT NULL UNIQUE,
            password_hash text NOT NULL,
            role text NOT NULL CHECK (role IN ('user', 'admin')),
            created_at bigint NOT NULL,
            disabled boolean NOT NULL DEFAULT false
        )""",
        """CREATE TABLE api_keys (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users (id),
            name text NOT NULL,
            prefix text NOT NULL UNIQUE,
            secret_hash text NOT NULL,
            created_at bigint NOT NULL,
            revoked_at bigint,
            last_used_at bigint
        )""",
        "CREATE INDEX api_keys_by_user ON api_keys (user_id, id)",
        """CREATE TABLE revoked_tokens (
            jti text NOT NULL PRIMARY KEY,
            expires_at bigint NOT NULL
        )""",
        "CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at)",
        """CREATE TABLE audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ts bigint NOT NULL,
            actor bigint,
            action text NOT NULL,
            ip text,
            detail text NOT NULL
        )""",
        "CREATE INDEX audit_by_actor ON audit_log (actor, id)",
        "CREATE INDEX audit_by_action ON audit_log (action, id)",
        "CREATE INDEX audit_by_ts ON audit_log (ts)",
    ),
)


class PostgresAccountStore:
    """An ``AccountStore`` in the PostgreSQL database at ``url`` (which must exist)."""

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        self._db = PostgresDatabase(
            url,
            name="memetrade-accounts",
            kind="account store",
            max_connections=max_connections,
        )

    def __repr__(self) -> str:
        return f"PostgresAccountStore({self._db.target!r})"

    async def open(self) -> None:
        async def setup(conn: Conn) -> None:
            await migrate(
                conn, "accounts_schema_version", _MIGRATION_LOCK, _MIGRATIONS, self._db.target
            )

        await self._db.open(setup)

    async def close(self) -> None:
        await self._db.close()

    async def _fetch(self, query: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Only this module's constant texts (and audit_query's fixed fragments) reach here;
        # values always travel as parameters.
        return await self._db.fetch(sql.SQL(query), args)

    # -- users ----------------------------------------------------------------------------------

    async def create_user(
        self, email: str, password_hash: str, role: Role, created_at: int
    ) -> User:
        query: LiteralString = (
            "INSERT INTO users (email, password_hash, role, created_at)"
            f" VALUES (%s, %s, %s, %s) RETURNING {USER_COLUMNS}"
        )
        args = (email.lower(), password_hash, role, created_at)

        async def run(conn: Conn) -> list[tuple[Any, ...]]:
            try:
                cur = await conn.execute(query, args)
            except errors.UniqueViolation as exc:
                if exc.diag.constraint_name == "users_email_key":
                    raise EmailTaken(one_line(exc)) from exc
                raise
            return await cur.fetchall()

        return user_from_row((await self._db.run("write to", run))[0])

    async def user_by_email(self, email: str) -> User | None:
        rows = await self._fetch(
            f"SELECT {USER_COLUMNS} FROM users WHERE email = %s", (email.lower(),)
        )
        return user_from_row(rows[0]) if rows else None

    async def user_by_id(self, user_id: int) -> User | None:
        rows = await self._fetch(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
        return user_from_row(rows[0]) if rows else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._fetch(
            "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id)
        )

    async def set_disabled(self, user_id: int, disabled: bool) -> User | None:
        rows = await self._fetch(
            f"UPDATE users SET disabled = %s WHERE id = %s RETURNING {USER_COLUMNS}",
            (disabled, user_id),
        )
        return user_from_row(rows[0]) if rows else None

    # -- API keys -------------------------------------------------------------------------------

    async def create_api_key(
        self, user_id: int, name: str, prefix: str, secret_hash: str, created_at: int
    ) -> ApiKey:
        rows = await self._fetch(
            "INSERT INTO api_keys (user_id, name, prefix, secret_hash, created_at)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {KEY_COLUMNS}",
            (user_id, name, prefix, secret_hash, created_at),
        )
        return api_key_from_row(rows[0])

    async def api_keys_of(self, user_id: int) -> list[ApiKey]:
        rows = await self._fetch(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = %s ORDER BY id", (user_id,)
        )
        return [api_key_from_row(row) for row in rows]

    async def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        rows = await self._fetch(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = %s", (prefix,))
        return api_key_from_row(rows[0]) if rows else None

    async def revoke_api_key(self, user_id: int, key_id: int, at: int) -> ApiKey | None:
        rows = await self._fetch(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s)"
            f" WHERE id = %s AND user_id = %s RETURNING {KEY_COLUMNS}",
            (at, key_id, user_id),
        )
        return api_key_from_row(rows[0]) if rows else None

    async def touch_api_key(self, key_id: int, at: int) -> None:
        await self._fetch(
            "UPDATE api_keys SET last_used_at = greatest(last_used_at, %s) WHERE id = %s",
            (at, key_id),
        )

    # -- session tokens -------------------------------------------------------------------------

    async def revoke_token(self, jti: str, expires_at: int, now: int) -> None:
        await self._fetch("DELETE FROM revoked_tokens WHERE expires_at < %s", (now,))
        await self._fetch(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (%s, %s)"
            " ON CONFLICT (jti) DO NOTHING",
            (jti, expires_at),
        )

    async def is_token_revoked(self, jti: str) -> bool:
        return bool(await self._fetch("SELECT 1 FROM revoked_tokens WHERE jti = %s", (jti,)))

    # -- audit log ------------------------------------------------------------------------------

    async def record(
        self, ts: int, actor: int | None, action: str, ip: str | None, detail: str
    ) -> AuditEntry:
        rows = await self._fetch(
            "INSERT INTO audit_log (ts, actor, action, ip, detail)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {AUDIT_COLUMNS}",
            (ts, actor, action, ip, detail),
        )
        return audit_from_row(rows[0])

    async def audit_entries(
        self,
        *,
        actor: int | None = None,
        action: str | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        query, args = audit_query("%s", actor, action, start, end, limit)
        return [audit_from_row(row) for row in await self._fetch(query, args)]
