"""Accounts end to end against real ``memetrade serve`` processes: sign-up, sign-in, cookies and
bearer tokens, sign-out, expired and forged tokens, API keys, the admin's audit log, rate limits
(one process, and two sharing Redis) and sign-in throttling.

Client addresses come from ``X-Forwarded-For``, which uvicorn trusts from the loopback; each
test uses addresses and emails of its own, since Redis is shared by every run.
"""

import os
import secrets
import time
from pathlib import Path

import httpx
import jwt
import pytest
import redis
from http_helpers import assert_error, make_client, running

pytestmark = pytest.mark.e2e

SECRET = "e2e-jwt-secret-" + "0" * 32
PASSWORD = "correct horse battery"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _email(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


def _address() -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.7"}


def _signup(client: httpx.Client, email: str) -> httpx.Response:
    response = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response


def _signin(client: httpx.Client, email: str, **headers: str) -> str:
    response = client.post(
        "/api/v1/auth/signin", json={"email": email, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_signup_signin_and_signout_with_cookie_and_bearer(tmp_path: Path) -> None:
    with running(tmp_path, JWT_SECRET=SECRET) as server, make_client(server) as client:
        email = _email("ann")
        signup = _signup(client, email)
        cookie = signup.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" not in cookie  # Plain http here.
        assert signup.json()["user"]["email"] == email
        # The client kept the cookie: it alone signs the request in.
        assert client.get("/api/v1/auth/me").json()["user"]["email"] == email

        assert_error(
            client.post("/api/v1/auth/signup", json={"email": email.upper(), "password": PASSWORD}),
            409,
            "email_taken",
        )
        assert_error(
            client.post("/api/v1/auth/signup", json={"email": "x@y.io", "password": "short"}),
            422,
            "weak_password",
        )
        assert_error(client.post("/api/v1/auth/signup", content=b"{"), 400, "malformed_json")
        assert_error(client.post("/api/v1/auth/signup", json={"email": 1}), 422, "invalid_request")

        with httpx.Client(base_url=server.base_url) as other:
            signin = other.post("/api/v1/auth/signin", json={"email": email, "password": PASSWORD})
            body = signin.json()
            assert body["token_type"] == "Bearer"
            assert body["expires_at"] > time.time() * 1000 + 86_000_000
            token = body["token"]
            other.cookies.clear()  # From here on only the bearer token speaks for it.
            assert_error(other.get("/api/v1/auth/me"), 401, "unauthorized")
            me = other.get("/api/v1/auth/me", headers=_bearer(token))
            assert me.json() == {"user": signup.json()["user"], "api_key_id": None}

            assert other.post("/api/v1/auth/signout", headers=_bearer(token)).status_code == 204
            assert_error(other.get("/api/v1/auth/me", headers=_bearer(token)), 401, "invalid_token")

        # The sign-up session is another token: still valid.
        assert client.get("/api/v1/auth/me").status_code == 200
        # Signing out with the cookie clears it and revokes its token.
        cookie_token = client.cookies["memetrade_session"]
        assert client.post("/api/v1/auth/signout").status_code == 204
        assert "memetrade_session" not in client.cookies
        assert_error(
            client.get("/api/v1/auth/me", headers=_bearer(cookie_token)), 401, "invalid_token"
        )

        assert_error(
            client.post("/api/v1/auth/signin", json={"email": email, "password": "wrong one!"}),
            401,
            "unauthorized",
        )


def test_expired_and_forged_tokens_are_refused_saying_which(tmp_path: Path) -> None:
    with (
        running(tmp_path, JWT_SECRET=SECRET, JWT_TTL_S="1") as server,
        make_client(server) as client,
    ):
        email = _email("bob")
        _signup(client, email)
        client.cookies.clear()
        token = _signin(client, email)
        user_id = client.get("/api/v1/auth/me", headers=_bearer(token)).json()["user"]["id"]

        claims = {"sub": str(user_id), "iat": int(time.time()), "exp": int(time.time()) + 600}
        forged = jwt.encode({**claims, "jti": "x"}, "another-secret-" + "1" * 32, algorithm="HS256")
        response = client.get("/api/v1/auth/me", headers=_bearer(forged))
        assert_error(response, 401, "invalid_token")
        assert "forged" in response.json()["error"]["message"]
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(
            client.get("/api/v1/auth/me", headers=_bearer("garbage")), 401, "invalid_token"
        )

        time.sleep(2.1)
        response = client.get("/api/v1/auth/me", headers=_bearer(token))
        assert_error(response, 401, "invalid_token")
        assert "expired" in response.json()["error"]["message"]


def test_api_keys_are_created_listed_used_and_revoked(tmp_path: Path) -> None:
    with running(tmp_path, JWT_SECRET=SECRET) as server, make_client(server) as client:
        _signup(client, _email("cat"))
        created = client.post("/api/v1/auth/api-keys", json={"name": "trading bot"})
        assert created.status_code == 201, created.text
        record = created.json()["api_key"]
        key = record.pop("key")
        assert key.startswith(f"mt_{record['prefix']}_")
        assert_error(
            client.post("/api/v1/auth/api-keys", json={"name": ""}), 422, "invalid_request"
        )

        with httpx.Client(base_url=server.base_url) as bot:
            me = bot.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()
            assert me["api_key_id"] == record["id"]
            # A key cannot mint keys.
            minted = bot.post(
                "/api/v1/auth/api-keys", json={"name": "x"}, headers={"X-API-Key": key}
            )
            assert_error(minted, 403, "forbidden")
            assert_error(
                bot.get("/api/v1/auth/me", headers={"X-API-Key": key + "x"}), 401, "unauthorized"
            )

            listed = client.get("/api/v1/auth/api-keys").json()["api_keys"]
            assert len(listed) == 1
            assert "key" not in listed[0]
            assert listed[0]["last_used_at"] is not None

            revoked = client.delete(f"/api/v1/auth/api-keys/{record['id']}")
            assert revoked.json()["api_key"]["revoked_at"] is not None
            assert_error(
                bot.get("/api/v1/auth/me", headers={"X-API-Key": key}), 401, "api_key_revoked"
            )
            assert_error(client.delete("/api/v1/auth/api-keys/9999"), 404, "not_found")


def test_the_audit_log_is_for_admins_only(tmp_path: Path) -> None:
    admin_email = _email("root")
    with (
        running(tmp_path, JWT_SECRET=SECRET, ADMIN_EMAIL=admin_email) as server,
        make_client(server) as admin,
        make_client(server) as user,
    ):
        assert _signup(admin, admin_email).json()["user"]["role"] == "admin"
        user_id = _signup(user, _email("dan")).json()["user"]["id"]
        where = _address()
        user.post(
            "/api/v1/auth/signin",
            json={"email": "nobody@example.com", "password": PASSWORD},
            headers=where,
        )

        assert_error(user.get("/api/v1/admin/audit"), 403, "forbidden")
        entries = admin.get("/api/v1/admin/audit", params={"user_id": user_id}).json()
        assert [e["action"] for e in entries["entries"]] == ["signup"]
        failed = admin.get("/api/v1/admin/audit", params={"action": "signin_failed"}).json()
        (entry,) = failed["entries"]
        assert entry["user_id"] is None
        assert entry["ip"] == where["X-Forwarded-For"]
        assert entry["detail"] == {"email": "nobody@example.com"}
        recent = admin.get("/api/v1/admin/audit", params={"from": entry["ts"], "limit": 1})
        assert recent.json()["entries"] == [entry]
        assert_error(admin.get("/api/v1/admin/audit", params={"limit": 0}), 400, "invalid_limit")

        changed = admin.patch(f"/api/v1/admin/users/{user_id}", json={"disabled": True})
        assert changed.json()["user"]["disabled"] is True
        assert_error(user.get("/api/v1/auth/me"), 403, "forbidden")


def test_requests_over_the_rate_limit_get_429_with_retry_after(tmp_path: Path) -> None:
    env = {"JWT_SECRET": SECRET, "RATE_LIMIT_PER_MIN": "5"}
    with running(tmp_path, **env) as server, make_client(server) as client:
        _signup(client, _email("eve"))
        for _ in range(5):
            assert client.get("/api/v1/auth/me").status_code == 200
        response = client.get("/api/v1/auth/me")
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        # Anonymous routes count per client address.
        other = _address()
        for _ in range(5):
            client.post("/api/v1/auth/signin", json={}, headers=other)
        assert_error(
            client.post("/api/v1/auth/signin", json={}, headers=other), 429, "rate_limited"
        )


def test_two_instances_share_the_rate_limit_through_redis(tmp_path: Path) -> None:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as probe:
            probe.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable ({exc}); CI=true requires it")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable ({exc})")
    env = {"JWT_SECRET": SECRET, "RATE_LIMIT_PER_MIN": "6", "REDIS_URL": REDIS_URL}
    with (
        running(tmp_path, **env) as one,
        # One exchange per database: its journal takes a lock; the second instance serves
        # accounts only.
        running(tmp_path, **env, EXCHANGE="0") as two,
        make_client(one) as a,
        make_client(two) as b,
    ):
        email = _email("fred")
        # Both instances use one database and one signing key.
        user_id = _signup(a, email).json()["user"]["id"]
        token = _signin(b, email)
        # User ids start at 1 in each test's new database, but Redis outlives the test: start
        # this user's window afresh.
        with redis.Redis.from_url(REDIS_URL) as shared:
            shared.delete(f"memetrade:rate:req:user:{user_id}")
        for client in (a, b, a, b, a, b):
            assert client.get("/api/v1/auth/me", headers=_bearer(token)).status_code == 200
        for client in (a, b):
            response = client.get("/api/v1/auth/me", headers=_bearer(token))
            assert_error(response, 429, "rate_limited")
            assert "retry-after" in response.headers


def test_repeated_failed_signins_lock_that_email_from_that_address(tmp_path: Path) -> None:
    env = {"JWT_SECRET": SECRET, "SIGNIN_MAX_FAILURES": "3"}
    with running(tmp_path, **env) as server, make_client(server) as client:
        email, attacker = _email("gil"), _address()
        _signup(client, email)
        wrong = {"email": email, "password": "not the password"}
        for _ in range(3):
            assert_error(client.post("/api/v1/auth/signin", json=wrong, headers=attacker), 401)
        right = {"email": email, "password": PASSWORD}
        response = client.post("/api/v1/auth/signin", json=right, headers=attacker)
        assert_error(response, 429, "rate_limited")
        assert 14 * 60 < int(response.headers["retry-after"]) <= 15 * 60
        # The owner, from elsewhere, still signs in.
        assert client.post("/api/v1/auth/signin", json=right, headers=_address()).status_code == 200
