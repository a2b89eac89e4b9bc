"""``AccountStore`` in an embedded SQLite file beside the market data's.

Design, and why:

* A file of its own (``memetrade-accounts.db`` by default; see ``storage.__init__``), through
  ``sqlite_conn`` (one writer thread, a few readers, ``synchronous = FULL``, since sign-ups and
  revocations are acknowledged facts).
* The schema version is kept in ``accounts_schema_version`` (one row per applied migration)
  rather than ``PRAGMA user_version``, so the store can also share a file with the market
  store. Migrations run in one ``BEGIN IMMEDIATE`` transaction, so two processes opening one
  file migrate it once.
* Audit lines are group-committed: every money-moving request writes one, and a commit (an
  fsync) each would cap order entry at a few hundred per second. Lines that arrive while a
  transaction runs go into the next one, and each ``record`` returns once its line is durable.
* ``sqlite3`` errors become ``StorageError``; a duplicate email becomes ``EmailTaken``.
"""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Final

from memetrade.adapters.storage.account_rows import (
    AUDIT_COLUMNS,
    KEY_COLUMNS,
    USER_COLUMNS,
    api_key_from_row,
    audit_from_row,
    audit_query,
    user_from_row,
)
from memetrade.adapters.storage.sqlite_conn import SqliteDatabase, migrate
from memetrade.domain.accounts import ApiKey, AuditEntry, Role, User
from memetrade.ports import EmailTaken

__all__ = ["SqliteAccountStore"]

_VERSION_TABLE: Final = "accounts_schema_version"
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: users, API keys, revoked tokens, audit log.
    (
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
            created_at INTEGER NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
        )""",
        """CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL REFERENCES users (id),
            name TEXT NOT NULL,
            prefix TEXT NOT NULL UNIQUE,
            secret_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER,
            last_used_at INTEGER
        )""",
        "CREATE INDEX api_keys_by_user ON api_keys (user_id, id)",
        """CREATE TABLE revoked_tokens (
            jti TEXT NOT NULL PRIMARY KEY,
            expires_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at)",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts INTEGER NOT NULL,
            actor INTEGER,
            action TEXT NOT NULL,
            ip TEXT,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_actor ON audit_log (actor, id)",
        "CREATE INDEX audit_by_action ON audit_log (action, id)",
        "CREATE INDEX audit_by_ts ON audit_log (ts)",
    ),
)


class SqliteAccountStore:
    """An ``AccountStore`` in the SQLite file at ``path`` (created with its directory)."""

    def __init__(self, path: str | Path, *, readers: int = 2) -> None:
        self._path = Path(path)
        self._db = SqliteDatabase(
            self._path, kind="account store", name="accounts", readers=readers
        )
        self._audit_waiting: list[tuple[tuple[Any, ...], asyncio.Future[AuditEntry]]] = []
        self._audit_writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SqliteAccountStore({str(self._path)!r})"

    async def open(self) -> None:
        await self._db.open(
            lambda conn: migrate(conn, _MIGRATIONS, str(self._path), _VERSION_TABLE)
        )

    async def close(self) -> None:
        if self._audit_writer is not None:
            # Audit lines already handed over are written before the connections go.
            await asyncio.gather(self._audit_writer, return_exceptions=True)
        await self._db.close()

    # -- users ----------------------------------------------------------------------------------

    async def create_user(
        self, email: str, password_hash: str, role: Role, created_at: int
    ) -> User:
        sql = (
            "INSERT INTO users (email, password_hash, role, created_at) VALUES (?, ?, ?, ?)"
            f" RETURNING {USER_COLUMNS}"
        )
        args = (email.lower(), password_hash, role, created_at)

        def run(conn: sqlite3.Connection) -> list[Any]:
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.IntegrityError as exc:
                if "users.email" in str(exc):
                    raise EmailTaken(str(exc)) from exc
                raise

        return user_from_row((await self._db.write(run))[0])

    async def user_by_email(self, email: str) -> User | None:
        rows = await self._db.fetch(
            f"SELECT {USER_COLUMNS} FROM users WHERE email = ?", (email.lower(),)
        )
        return user_from_row(rows[0]) if rows else None

    async def user_by_id(self, user_id: int) -> User | None:
        rows = await self._db.fetch(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return user_from_row(rows[0]) if rows else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        sql = "UPDATE users SET password_hash = ? WHERE id = ?"
        await self._db.write(lambda conn: conn.execute(sql, (password_hash, user_id)))

    async def set_disabled(self, user_id: int, disabled: bool) -> User | None:
        sql = f"UPDATE users SET disabled = ? WHERE id = ? RETURNING {USER_COLUMNS}"
        rows = await self._db.write(
            lambda conn: conn.execute(sql, (int(disabled), user_id)).fetchall()
        )
        return user_from_row(rows[0]) if rows else None

    # -- API keys -------------------------------------------------------------------------------

    async def create_api_key(
        self, user_id: int, name: str, prefix: str, secret_hash: str, created_at: int
    ) -> ApiKey:
        sql = (
            "INSERT INTO api_keys (user_id, name, prefix, secret_hash, created_at)"
            f" VALUES (?, ?, ?, ?, ?) RETURNING {KEY_COLUMNS}"
        )
        args = (user_id, name, prefix, secret_hash, created_at)
        rows = await self._db.write(lambda conn: conn.execute(sql, args).fetchall())
        return api_key_from_row(rows[0])

    async def api_keys_of(self, user_id: int) -> list[ApiKey]:
        sql = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY id"
        return [api_key_from_row(row) for row in await self._db.fetch(sql, (user_id,))]

    async def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        rows = await self._db.fetch(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = ?", (prefix,)
        )
        return api_key_from_row(rows[0]) if rows else None

    async def revoke_api_key(self, user_id: int, key_id: int, at: int) -> ApiKey | None:
        sql = (
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)"
            f" WHERE id = ? AND user_id = ? RETURNING {KEY_COLUMNS}"
        )
        rows = await self._db.write(
            lambda conn: conn.execute(sql, (at, key_id, user_id)).fetchall()
        )
        return api_key_from_row(rows[0]) if rows else None

    async def touch_api_key(self, key_id: int, at: int) -> None:
        sql = "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?"
        await self._db.write(lambda conn: conn.execute(sql, (at, key_id)))

    # -- session tokens -------------------------------------------------------------------------

    async def revoke_token(self, jti: str, expires_at: int, now: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)"
                " ON CONFLICT (jti) DO NOTHING",
                (jti, expires_at),
            )

        await self._db.write(run)

    async def is_token_revoked(self, jti: str) -> bool:
        return bool(await self._db.fetch("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)))

    # -- audit log ------------------------------------------------------------------------------

    async def record(
        self, ts: int, actor: int | None, action: str, ip: str | None, detail: str
    ) -> AuditEntry:
        self._db.require_open()
        done: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        self._audit_waiting.append(((ts, actor, action, ip, detail), done))
        if self._audit_writer is None or self._audit_writer.done():
            self._audit_writer = asyncio.create_task(self._write_audit())
        return await asyncio.shield(done)

    async def _write_audit(self) -> None:
        sql = (
            "INSERT INTO audit_log (ts, actor, action, ip, detail) VALUES (?, ?, ?, ?, ?)"
            f" RETURNING {AUDIT_COLUMNS}"
        )
        while self._audit_waiting:
            batch, self._audit_waiting = self._audit_waiting, []

            def insert(conn: sqlite3.Connection, batch: Any = batch) -> list[Any]:
                return [conn.execute(sql, args).fetchone() for args, _ in batch]

            try:
                rows = await self._db.write(insert)
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
                    done.exception()  # The caller may be gone; do not report it as lost.
            else:
                for (_, done), row in zip(batch, rows, strict=True):
                    done.set_result(audit_from_row(row))

    async def audit_entries(
        self,
        *,
        actor: int | None = None,
        action: str | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        sql, args = audit_query("?", actor, action, start, end, limit)
        return [audit_from_row(row) for row in await self._db.fetch(sql, tuple(args))]
