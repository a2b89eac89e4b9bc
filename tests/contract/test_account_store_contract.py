"""The ``AccountStore`` contract: SQLite and PostgreSQL must both pass all of it.

PostgreSQL tests get a database of their own (``store_backends.postgres_database``), skipped
when the server is unreachable and failing under ``CI=true``.
"""

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from store_backends import SYMBOLS, postgres_database

from memetrade.adapters.storage import account_store_from_url
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.accounts import AuditEntry
from memetrade.domain.trades import Side, Trade
from memetrade.ports import AccountStore, EmailTaken

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def account_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'memetrade.db'}"
        return
    url, drop = postgres_database()
    yield url
    drop()


@pytest.fixture
async def accounts(account_url: str) -> AsyncIterator[AccountStore]:
    store = account_store_from_url(account_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_users_are_found_by_id_and_by_email_in_any_case(accounts: AccountStore) -> None:
    alice = await accounts.create_user("Alice@Example.COM", "hash-a", "user", T0)
    admin = await accounts.create_user("root@example.com", "hash-r", "admin", T0 + 1)

    assert alice.email == "alice@example.com"
    assert (alice.role, alice.created_at, alice.disabled) == ("user", T0, False)
    assert admin.id != alice.id
    assert await accounts.user_by_email("ALICE@example.com") == alice
    assert await accounts.user_by_id(admin.id) == admin
    assert await accounts.user_by_email("nobody@example.com") is None
    assert await accounts.user_by_id(10_000) is None


async def test_an_email_registers_once_whatever_its_case(accounts: AccountStore) -> None:
    await accounts.create_user("bob@example.com", "h", "user", T0)
    with pytest.raises(EmailTaken):
        await accounts.create_user("BOB@example.com", "h2", "user", T0)


async def test_two_racing_signups_of_one_email_make_one_user(accounts: AccountStore) -> None:
    outcomes: list[str] = []

    async def sign_up() -> None:
        try:
            await accounts.create_user("race@example.com", "h", "user", T0)
            outcomes.append("created")
        except EmailTaken:
            outcomes.append("taken")

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(sign_up)
    assert sorted(outcomes) == ["created", "taken", "taken", "taken"]


async def test_password_hash_and_disabled_flag_change(accounts: AccountStore) -> None:
    user = await accounts.create_user("c@example.com", "old", "user", T0)
    await accounts.set_password_hash(user.id, "new")
    disabled = await accounts.set_disabled(user.id, True)

    assert disabled is not None
    assert (disabled.password_hash, disabled.disabled) == ("new", True)
    assert await accounts.user_by_id(user.id) == disabled
    enabled = await accounts.set_disabled(user.id, False)
    assert enabled is not None
    assert not enabled.disabled
    assert await accounts.set_disabled(10_000, True) is None


async def test_api_keys_are_listed_found_by_prefix_and_revoked_once(
    accounts: AccountStore,
) -> None:
    owner = await accounts.create_user("d@example.com", "h", "user", T0)
    other = await accounts.create_user("e@example.com", "h", "user", T0)
    first = await accounts.create_api_key(owner.id, "bot", "aaaa1111", "hash1", T0 + 1)
    second = await accounts.create_api_key(owner.id, "ci", "bbbb2222", "hash2", T0 + 2)
    await accounts.create_api_key(other.id, "theirs", "cccc3333", "hash3", T0 + 3)

    assert (first.name, first.prefix, first.secret_hash, first.created_at) == (
        "bot",
        "aaaa1111",
        "hash1",
        T0 + 1,
    )
    assert first.revoked_at is None
    assert first.last_used_at is None
    assert await accounts.api_keys_of(owner.id) == [first, second]
    assert await accounts.api_key_by_prefix("bbbb2222") == second
    assert await accounts.api_key_by_prefix("zzzz") is None

    # Another user's key is not theirs to revoke; a second revocation keeps the first time.
    assert await accounts.revoke_api_key(other.id, first.id, T0 + 5) is None
    revoked = await accounts.revoke_api_key(owner.id, first.id, T0 + 10)
    again = await accounts.revoke_api_key(owner.id, first.id, T0 + 20)
    assert revoked is not None
    assert again is not None
    assert revoked.revoked_at == again.revoked_at == T0 + 10
    assert await accounts.api_key_by_prefix("aaaa1111") == revoked

    await accounts.touch_api_key(second.id, T0 + 30)
    await accounts.touch_api_key(second.id, T0 + 25)  # An older use never moves it back.
    touched = await accounts.api_key_by_prefix("bbbb2222")
    assert touched is not None
    assert touched.last_used_at == T0 + 30


async def test_revoked_tokens_are_remembered_until_they_expire(accounts: AccountStore) -> None:
    await accounts.revoke_token("jti-1", T0 + 1_000, T0)
    await accounts.revoke_token("jti-1", T0 + 1_000, T0)  # Signing out twice is harmless.
    await accounts.revoke_token("jti-2", T0 + 5_000, T0)
    assert await accounts.is_token_revoked("jti-1")
    assert not await accounts.is_token_revoked("jti-3")

    # Past jti-1's expiry the store may forget it (the token is refused as expired anyway).
    await accounts.revoke_token("jti-3", T0 + 9_000, T0 + 2_000)
    assert not await accounts.is_token_revoked("jti-1")
    assert await accounts.is_token_revoked("jti-2")
    assert await accounts.is_token_revoked("jti-3")


async def test_audit_entries_filter_by_user_action_and_time_newest_first(
    accounts: AccountStore,
) -> None:
    a = await accounts.create_user("f@example.com", "h", "user", T0)
    b = await accounts.create_user("g@example.com", "h", "user", T0)
    recorded = [
        await accounts.record(T0 + 1, a.id, "signup", "127.0.0.1", '{"role":"user"}'),
        await accounts.record(T0 + 2, b.id, "signup", "10.0.0.2", "{}"),
        await accounts.record(T0 + 3, None, "signin_failed", None, '{"email":"x@y.io"}'),
        await accounts.record(T0 + 4, a.id, "signin", "127.0.0.1", "{}"),
    ]
    assert recorded[2].actor is None
    assert recorded[2].ip is None
    assert recorded[2].detail == '{"email":"x@y.io"}'

    newest_first = list(reversed(recorded))
    assert await accounts.audit_entries() == newest_first
    assert await accounts.audit_entries(limit=2) == newest_first[:2]
    assert await accounts.audit_entries(actor=a.id) == [recorded[3], recorded[0]]
    assert await accounts.audit_entries(action="signup") == [recorded[1], recorded[0]]
    assert await accounts.audit_entries(start=T0 + 2, end=T0 + 3) == [recorded[2], recorded[1]]
    assert await accounts.audit_entries(actor=a.id, action="signin", start=T0 + 4) == [recorded[3]]
    assert await accounts.audit_entries(action="withdraw") == []


async def test_concurrent_audit_lines_each_get_their_own_entry(accounts: AccountStore) -> None:
    async def line(i: int) -> None:
        entry = await accounts.record(T0 + i, None, "order_placed", None, f'{{"order_id":{i}}}')
        recorded[i] = entry

    recorded: dict[int, AuditEntry] = {}
    async with anyio.create_task_group() as group:
        for i in range(200):
            group.start_soon(line, i)
    assert len({entry.id for entry in recorded.values()}) == 200
    assert all(entry.detail == f'{{"order_id":{i}}}' for i, entry in recorded.items())
    stored = await accounts.audit_entries(limit=1000)
    assert sorted(stored, key=lambda e: e.id) == sorted(recorded.values(), key=lambda e: e.id)


async def test_reopening_keeps_everything_and_migrates_nothing_twice(account_url: str) -> None:
    first = account_store_from_url(account_url)
    await first.open()
    user = await first.create_user("h@example.com", "h", "user", T0)
    await first.close()

    # Two processes opening at once: both find the schema applied once.
    stores = [account_store_from_url(account_url) for _ in range(2)]
    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(store.open)
    try:
        for store in stores:
            assert await store.user_by_id(user.id) == user
    finally:
        for store in stores:
            await store.close()


async def test_sqlite_accounts_live_beside_the_market_data_file(tmp_path: Path) -> None:
    path = tmp_path / "memetrade.db"
    market = SqliteStore(path)
    accounts = account_store_from_url(f"sqlite:///{path}")
    await market.open(SYMBOLS)
    await accounts.open()
    try:

        async def write_trades() -> None:
            for i in range(20):
                trade = Trade(f"t{i}", "PEPE", 100, 1, Side.BUY, T0 + i)
                await market.write([trade], [])

        async def write_accounts() -> None:
            for i in range(20):
                await accounts.create_user(f"u{i}@example.com", "h", "user", T0)

        # Both writers at once, each in its own file: neither waits for the other's lock.
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_trades)
            tg.start_soon(write_accounts)
        assert await market.trade_count() == 20
        assert await accounts.user_by_email("u19@example.com") is not None
        assert (tmp_path / "memetrade-accounts.db").exists()
    finally:
        await accounts.close()
        await market.close()

    with closing(sqlite3.connect(tmp_path / "memetrade-accounts.db")) as conn:
        versions = conn.execute("SELECT version FROM accounts_schema_version").fetchall()
    with closing(sqlite3.connect(path)) as conn:
        market_tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert versions == [(1,)]
    assert "users" not in market_tables
