"""Bearer tokens (HMAC-signed, short-lived, verified without a round trip), secret hashing
(Argon2id, memory-hard) and the caller identity attached to each request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass(frozen=True)
class Principal:
    kind: str  # "bank" | "exporter" | "admin"
    id: str

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}" if self.kind != "admin" else "admin"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: verified tokens a process remembers (a token is immutable: its signature never has to be
#: checked twice); only good tokens enter, and the memory is dropped whole when full
VERIFIED_CACHE = 20_000


class TokenSigner:
    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(("ige-token:" + key).encode()).digest()
        self._verified: dict[str, tuple[Principal, int]] = {}

    def issue(self, kind: str, subject: str, ttl_s: int, now: float | None = None) -> str:
        exp = int((now if now is not None else time.time()) + ttl_s)
        body = _b64(json.dumps({"k": kind, "s": subject, "e": exp}, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}"

    def verify(self, token: str, now: float | None = None) -> Principal | None:
        at = now if now is not None else time.time()
        known = self._verified.get(token)
        if known is not None:
            return known[0] if known[1] > at else None
        found = self._verify(token, at)
        if found is not None:
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = found
            return found[0]
        return None

    def _verify(self, token: str, now: float) -> tuple[Principal, int] | None:
        body, _, sig = token.partition(".")
        if not body or not sig:
            return None
        want = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        # bytes, not str: compare_digest raises TypeError on non-ASCII str (a 500, not a 401)
        if not hmac.compare_digest(want.encode(), sig.encode()):
            return None
        try:
            claims = json.loads(_unb64(body))
        except ValueError:
            return None
        exp = claims.get("e", 0)
        if not isinstance(exp, int) or exp <= now:
            return None
        return Principal(str(claims["k"]), str(claims["s"])), exp
