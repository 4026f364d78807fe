"""Unit tests for gateway.security: signed bearer tokens and secret hashing."""

from __future__ import annotations

import base64
import json
import re

import pytest

from usecases.security import Principal, TokenSigner, hash_secret, new_id, verify_secret

KEY = "k" * 40
NOW = 1_776_781_800.0


def signer(key: str = KEY) -> TokenSigner:
    return TokenSigner(key)


def token(kind: str = "bank", subject: str = "bank_1", ttl_s: int = 600) -> str:
    return signer().issue(kind, subject, ttl_s, now=NOW)


def flip(text: str, index: int) -> str:
    """Change one character of a base64url string to another valid one."""
    c = text[index]
    return text[:index] + ("A" if c != "A" else "B") + text[index + 1:]


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize(("kind", "subject"), [("bank", "bank_1"), ("exporter", "usr_ab12"),
                                               ("bank", "ünicode-ğ")])
def test_issued_token_verifies_to_its_principal(kind: str, subject: str) -> None:
    t = signer().issue(kind, subject, 600, now=NOW)
    assert signer().verify(t, now=NOW) == Principal(kind, subject)


@pytest.mark.parametrize(("offset_s", "valid"), [(0, True), (599.999, True), (600, False),
                                                  (601, False), (-100, True)])
def test_token_expires_exactly_at_its_ttl(offset_s: float, valid: bool) -> None:
    assert (signer().verify(token(ttl_s=600), now=NOW + offset_s) is not None) is valid


def test_a_remembered_token_still_expires_at_its_ttl() -> None:
    """Verified tokens are remembered (the signature is checked once), never past their
    expiry."""
    s, t = signer(), token(ttl_s=600)
    assert s.verify(t, now=NOW) == Principal("bank", "bank_1")
    assert s.verify(t, now=NOW + 599) == Principal("bank", "bank_1")
    assert s.verify(t, now=NOW + 600) is None
    assert s.verify(t, now=NOW + 10_000) is None


def test_the_memory_of_verified_tokens_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import usecases.security as security

    monkeypatch.setattr(security, "VERIFIED_CACHE", 3)
    s = signer()
    tokens = [s.issue("bank", f"bank_{i}", 600, now=NOW) for i in range(10)]
    for i, t in enumerate(tokens):
        assert s.verify(t, now=NOW) == Principal("bank", f"bank_{i}")
        assert len(s._verified) <= 3
    assert s.verify(flip(tokens[0], 3), now=NOW) is None  # refused ones are never kept
    assert all(t in tokens for t in s._verified)


# ----------------------------------------------------------------------------- refusals
def test_token_signed_with_another_key_is_refused() -> None:
    assert signer("another key entirely").verify(token(), now=NOW) is None


@pytest.mark.parametrize("part", ["body", "signature"])
def test_token_with_any_character_changed_is_refused(part: str) -> None:
    body, sig = token().split(".")
    for i in range(len(body if part == "body" else sig)):
        forged = f"{flip(body, i)}.{sig}" if part == "body" else f"{body}.{flip(sig, i)}"
        assert signer().verify(forged, now=NOW) is None, (part, i)


def test_token_with_rewritten_claims_is_refused() -> None:
    body, sig = token(kind="exporter", subject="usr_1").split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["k"] = "bank"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert signer().verify(f"{forged}.{sig}", now=NOW) is None


def test_signature_of_one_token_does_not_fit_another() -> None:
    body_a, _ = token(subject="bank_a").split(".")
    _, sig_b = token(subject="bank_b").split(".")
    assert signer().verify(f"{body_a}.{sig_b}", now=NOW) is None


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "abc", "abc.", ".abc", "a.b.c", "Bearer x", "abc.\u00e9", "\u00e9\u00e9.abc",
     "\x00.\x00", "%%%.%%%"],
)
def test_malformed_tokens_are_refused_not_raised(garbage: str) -> None:
    assert signer().verify(garbage, now=NOW) is None


# ----------------------------------------------------------------------------- principal, ids
@pytest.mark.parametrize(("p", "actor"), [(Principal("bank", "b1"), "bank:b1"),
                                          (Principal("exporter", "u1"), "exporter:u1"),
                                          (Principal("admin", "admin"), "admin")])
def test_principal_names_its_actor_for_the_audit_trail(p: Principal, actor: str) -> None:
    assert p.actor == actor


def test_new_ids_are_prefixed_and_random() -> None:
    ids = {new_id("off") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"off_[0-9a-f]{20}", i) for i in ids)


# ----------------------------------------------------------------------------- secrets
def test_secret_hash_verifies_only_the_same_secret() -> None:
    stored = hash_secret("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert verify_secret(stored, "correct horse battery staple")
    assert not verify_secret(stored, "correct horse battery stapler")


def test_same_secret_hashes_differently_each_time() -> None:
    assert hash_secret("s3cret") != hash_secret("s3cret")


@pytest.mark.parametrize("stored", ["", "plain-text", "$argon2id$broken"])
def test_malformed_stored_hash_verifies_nothing(stored: str) -> None:
    assert verify_secret(stored, "anything") is False
