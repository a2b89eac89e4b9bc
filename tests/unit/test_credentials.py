"""Session tokens, API keys and the sign-up rules: forged, expired, malformed and well-formed."""

import jwt
import pytest

from memetrade.adapters.clock import ManualClock
from memetrade.domain.accounts import (
    InvalidEmail,
    WeakPassword,
    check_password,
    normalize_email,
)
from memetrade.services.credentials import (
    TokenIssuer,
    Unauthorized,
    hash_secret,
    new_api_key,
    parse_api_key,
    secret_matches,
)

T0 = 1_700_000_000_000
SECRET = "s" * 32


def test_a_token_carries_its_user_id_and_expiry() -> None:
    clock = ManualClock(T0)
    issuer = TokenIssuer(SECRET, 3600, clock)
    issued = issuer.issue(42)

    claims = issuer.verify(issued.token)
    assert (claims.user_id, claims.jti, claims.expires_at) == (42, issued.jti, T0 + 3_600_000)
    payload = jwt.decode(issued.token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert set(payload) == {"sub", "iat", "exp", "jti"}
    assert payload["sub"] == "42"
    assert issuer.issue(42).jti != issued.jti


def test_a_token_expires_at_its_exp_second() -> None:
    clock = ManualClock(T0)
    issuer = TokenIssuer(SECRET, 60, clock)
    token = issuer.issue(1).token
    clock.advance(59_999)
    issuer.verify(token)
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired") as caught:
        issuer.verify(token)
    assert caught.value.code == "invalid_token"


def test_a_token_signed_with_another_key_is_forged() -> None:
    clock = ManualClock(T0)
    forged = TokenIssuer("x" * 32, 60, clock).issue(1).token
    with pytest.raises(Unauthorized, match="forged") as caught:
        TokenIssuer(SECRET, 60, clock).verify(forged)
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "1", "iat": 1, "exp": 2_000_000_000},  # no jti
        {"sub": "abc", "iat": 1, "exp": 2_000_000_000, "jti": "j"},  # not a user id
        {"sub": "1", "iat": 1, "exp": "later", "jti": "j"},
    ],
)
def test_tokens_with_missing_or_malformed_claims_are_refused(claims: dict[str, object]) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized) as caught:
        TokenIssuer(SECRET, 60, ManualClock(T0)).verify(token)
    assert caught.value.code == "invalid_token"


def test_unsigned_and_garbage_tokens_are_refused() -> None:
    issuer = TokenIssuer(SECRET, 60, ManualClock(T0))
    unsigned = jwt.encode({"sub": "1", "iat": 1, "exp": 2_000_000_000, "jti": "j"}, None, "none")
    for token in (unsigned, "not.a.token", ""):
        with pytest.raises(Unauthorized):
            issuer.verify(token)


def test_api_keys_parse_back_and_store_only_a_hash_of_the_secret() -> None:
    key, prefix, secret_hash = new_api_key()
    assert key.startswith(f"mt_{prefix}_")
    parsed = parse_api_key(key)
    assert parsed is not None
    assert parsed[0] == prefix
    assert secret_hash == hash_secret(parsed[1])
    assert parsed[1] not in secret_hash
    assert len(parsed[1]) == 43  # 32 random bytes, URL-safe base64 without padding.
    assert secret_matches(parsed[1], secret_hash)
    assert not secret_matches(parsed[1] + "x", secret_hash)
    assert new_api_key()[1] != prefix


@pytest.mark.parametrize(
    "key", ["", "mt_", "mt_abc_secret", "xx_0123456789abcdef_secret", "mt_0123456789abcdef_"]
)
def test_malformed_api_keys_do_not_parse(key: str) -> None:
    assert parse_api_key(key) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob.smith+tag@mail.example.org ", "bob.smith+tag@mail.example.org"),
    ],
)
def test_emails_are_trimmed_and_lower_cased(text: str, expected: str) -> None:
    assert normalize_email(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@localhost",
        "a b@example.com",
        "a@-x.com",
        "a@x..com",
        "é@example.com",
        "a@@example.com",
        "x" * 65 + "@example.com",
    ],
)
def test_malformed_emails_are_refused(text: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(text)


def test_passwords_need_ten_characters() -> None:
    check_password("0123456789")
    with pytest.raises(WeakPassword):
        check_password("012345678")
    with pytest.raises(WeakPassword):
        check_password("x" * 1025)
