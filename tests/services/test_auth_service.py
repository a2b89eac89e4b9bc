"""``AuthService`` over a real SQLite account store and a manual clock."""

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from argon2 import PasswordHasher

from memetrade.adapters.clock import ManualClock
from memetrade.adapters.rate_counters import MemoryCounters
from memetrade.adapters.storage.accounts_sqlite import SqliteAccountStore
from memetrade.domain.accounts import WeakPassword
from memetrade.services.auth import AuthService, Principal
from memetrade.services.credentials import (
    Conflict,
    Forbidden,
    NotFound,
    Passwords,
    RateLimited,
    TokenIssuer,
    Unauthorized,
)
from memetrade.services.rate_limit import SigninThrottle

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000
PASSWORD = "correct horse battery"
# Cheap parameters: these tests are about the flow, not the hash's cost.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Fixture:
    def __init__(self, store: SqliteAccountStore, clock: ManualClock) -> None:
        self.store, self.clock = store, clock
        self.credited: list[int] = []

        async def on_signup(user_id: int) -> None:
            self.credited.append(user_id)

        self.auth = self.make(Passwords(FAST), on_signup)

    def make(self, passwords: Passwords, on_signup: object = None) -> AuthService:
        return AuthService(
            self.store,
            TokenIssuer("k" * 32, 3600, self.clock),
            SigninThrottle(MemoryCounters(self.clock), 3),
            self.clock,
            passwords=passwords,
            admin_email="Boss@Example.com",
            on_signup=on_signup,  # type: ignore[arg-type]
        )


@pytest.fixture
async def fx(tmp_path: Path) -> AsyncIterator[Fixture]:
    store = SqliteAccountStore(tmp_path / "memetrade.db")
    await store.open()
    try:
        yield Fixture(store, ManualClock(T0))
    finally:
        await store.close()


async def _actions(fx: Fixture) -> list[str]:
    return [entry.action for entry in reversed(await fx.store.audit_entries())]


async def test_signup_signs_in_credits_and_makes_the_configured_admin(fx: Fixture) -> None:
    user = (await fx.auth.signup("alice@example.com", PASSWORD, "1.1.1.1")).user
    boss = await fx.auth.signup("boss@example.com", PASSWORD, "1.1.1.1")

    assert (user.role, boss.user.role) == ("user", "admin")
    assert fx.credited == [user.id, boss.user.id]
    principal = await fx.auth.principal_from_token(boss.token.token)
    assert principal == Principal(boss.user.id, "admin", None)
    with pytest.raises(Conflict) as caught:
        await fx.auth.signup("ALICE@example.com", PASSWORD, None)
    assert caught.value.code == "email_taken"
    with pytest.raises(WeakPassword):
        await fx.auth.signup("carol@example.com", "short", None)
    assert await _actions(fx) == ["signup", "signup"]


async def test_failed_signins_are_audited_then_throttled(fx: Fixture) -> None:
    user = (await fx.auth.signup("dave@example.com", PASSWORD, None)).user
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await fx.auth.signin("dave@example.com", "wrong password!", "2.2.2.2")
    with pytest.raises(RateLimited):
        await fx.auth.signin("dave@example.com", PASSWORD, "2.2.2.2")
    # Elsewhere the owner still gets in; here, once the window has passed.
    await fx.auth.signin("dave@example.com", PASSWORD, "3.3.3.3")
    fx.clock.advance(15 * 60_000)
    await fx.auth.signin("Dave@Example.com", PASSWORD, "2.2.2.2")

    failed = await fx.store.audit_entries(action="signin_failed")
    assert len(failed) == 3
    assert failed[0].actor == user.id
    assert msgspec.json.decode(failed[0].detail) == {"email": "dave@example.com"}
    with pytest.raises(Unauthorized):
        await fx.auth.signin("nobody@example.com", PASSWORD, None)
    assert (await fx.store.audit_entries(action="signin_failed", limit=1))[0].actor is None


async def test_signin_rehashes_a_password_hashed_with_old_parameters(fx: Fixture) -> None:
    user = (await fx.auth.signup("erin@example.com", PASSWORD, None)).user
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    await fx.make(Passwords(stronger)).signin("erin@example.com", PASSWORD, None)

    stored = await fx.store.user_by_id(user.id)
    assert stored is not None
    assert stored.password_hash != user.password_hash
    assert not stronger.check_needs_rehash(stored.password_hash)


async def test_signout_revokes_the_token_until_it_expires(fx: Fixture) -> None:
    session = await fx.auth.signup("fay@example.com", PASSWORD, None)
    other = await fx.auth.signin("fay@example.com", PASSWORD, None)
    await fx.auth.signout(session.token.token, None)
    with pytest.raises(Unauthorized, match="signed out"):
        await fx.auth.principal_from_token(session.token.token)
    await fx.auth.principal_from_token(other.token.token)  # Other sessions live on.
    fx.clock.advance(3600 * 1000)
    with pytest.raises(Unauthorized, match="expired"):
        await fx.auth.principal_from_token(other.token.token)


async def test_api_keys_authenticate_until_revoked(fx: Fixture) -> None:
    user = (await fx.auth.signup("gus@example.com", PASSWORD, None)).user
    session = Principal(user.id, "user")
    created = await fx.auth.create_api_key(session, "bot", None)

    via_key = await fx.auth.principal_from_api_key(created.key)
    assert via_key == Principal(user.id, "user", created.record.id)
    with pytest.raises(Forbidden):
        await fx.auth.create_api_key(via_key, "minted by a key", None)
    with pytest.raises(Unauthorized) as wrong:
        await fx.auth.principal_from_api_key(created.key[:-2] + "xx")
    assert wrong.value.code == "unauthorized"

    # last_used_at is written at most once a minute.
    fx.clock.advance(10)
    await fx.auth.principal_from_api_key(created.key)
    (listed,) = await fx.auth.api_keys(session)
    assert listed.last_used_at == T0

    with pytest.raises(NotFound):
        await fx.auth.revoke_api_key(Principal(user.id + 1, "user"), created.record.id, None)
    await fx.auth.revoke_api_key(session, created.record.id, None)
    with pytest.raises(Unauthorized) as revoked:
        await fx.auth.principal_from_api_key(created.key)
    assert revoked.value.code == "api_key_revoked"
    assert await _actions(fx) == ["signup", "api_key_created", "api_key_revoked"]


async def test_admins_read_the_audit_log_and_disable_users(fx: Fixture) -> None:
    boss = (await fx.auth.signup("boss@example.com", PASSWORD, None)).user
    hal = await fx.auth.signup("hal@example.com", PASSWORD, None)
    admin, user = Principal(boss.id, "admin"), Principal(hal.user.id, "user")

    with pytest.raises(Forbidden):
        await fx.auth.audit_entries(user, actor=None, action=None, start=None, end=None, limit=10)
    entries = await fx.auth.audit_entries(
        admin, actor=hal.user.id, action=None, start=None, end=None, limit=10
    )
    assert [e.action for e in entries] == ["signup"]

    with pytest.raises(Forbidden):
        await fx.auth.set_disabled(user, boss.id, True, None)
    await fx.auth.set_disabled(admin, hal.user.id, True, None)
    with pytest.raises(Forbidden):
        await fx.auth.principal_from_token(hal.token.token)
    with pytest.raises(Forbidden):
        await fx.auth.signin("hal@example.com", PASSWORD, None)
    with pytest.raises(NotFound):
        await fx.auth.set_disabled(admin, 10_000, True, None)
