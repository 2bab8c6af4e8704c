"""Login (SPEC §5): EIP-4361 challenges with single-use nonces, short-lived bearer tokens, and
roles read from the chain (cached per block, so a suspension bites at the next call)."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from eth_utils import to_checksum_address
from sqlalchemy import update

from chain_client import Ledger, Member, Role
from db.models import AuthNonce
from db.store import Store

from . import siwe
from .errors import Problem
from .settings import Settings

CHALLENGE_LIFETIME = timedelta(minutes=10)
#: The ``scope`` claim of a token issued to a suspended SUBJECT (SPEC §9.8 "Withdrawal always
#: works"): it is accepted only by the routes that revoke, pause and read the subject's own data.
WITHDRAW_SCOPE = "withdraw"
AUDIENCE = "qcl-api"
STATEMENT = "Sign in to the Quanchenglian data-sharing ledger."


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int
    roles: list[str]


def jwt_secret(settings: Settings) -> bytes:
    """The token key: from settings, or (dev/test) generated once into ``<data_dir>/jwt.secret``."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    path = Path(settings.data_dir) / "jwt.secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


class Authenticator:
    def __init__(
        self, *, store: Store, ledger: Ledger, settings: Settings, secret: bytes, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._secret = secret
        self._clock = clock
        self._cache: dict[str, tuple[int, Member]] = {}
        self._lock = threading.Lock()

    # ---- challenge and token ---------------------------------------------------------------------

    def challenge(self, address: str) -> tuple[str, str]:
        """A fresh EIP-4361 message for ``address`` and its single-use nonce."""
        now = datetime.fromtimestamp(int(self._clock()), UTC)
        nonce = siwe.new_nonce()
        message = siwe.challenge(
            domain=self._settings.siwe_domain,
            address=to_checksum_address(address),
            uri=self._settings.public_url,
            chain_id=self._ledger.chain_id,
            nonce=nonce,
            lifetime=CHALLENGE_LIFETIME,
            statement=STATEMENT,
            now=now,
        )
        with self._store.session() as s:
            s.add(
                AuthNonce(nonce=nonce, address=message.address, expires_at=int((now + CHALLENGE_LIFETIME).timestamp()))
            )
        return message.to_text(), nonce

    def token(self, message: str, signature: str) -> Token:
        """Verify a signed challenge, spend its nonce, and issue a bearer token to a member."""
        now = datetime.fromtimestamp(int(self._clock()), UTC)
        try:
            parsed = siwe.verify(
                message,
                signature,
                domain=self._settings.siwe_domain,
                chain_id=self._ledger.chain_id,
                now=now,
                max_lifetime=CHALLENGE_LIFETIME,
            )
        except siwe.SiweError as exc:
            raise Problem(401, exc.code if exc.code != "malformed" else "siwe_malformed", str(exc)) from None
        with self._store.session() as s:
            spent = s.execute(  # type: ignore[attr-defined]  # an UPDATE's CursorResult has rowcount
                update(AuthNonce)
                .where(
                    AuthNonce.nonce == parsed.nonce,
                    AuthNonce.address == parsed.address,
                    AuthNonce.used_at.is_(None),
                    AuthNonce.expires_at > int(now.timestamp()),
                )
                .values(used_at=int(now.timestamp()))
            ).rowcount
        if spent != 1:
            raise Problem(409, "nonce_used", "this login nonce was not issued to this address, expired, or was used")
        member = self._member(parsed.address, fresh=True)
        withdraw_only = member.is_member and member.suspended and Role.SUBJECT in member.roles
        if not withdraw_only:
            self._require_active(member)
        issued = int(self._clock())
        claims = {
            "sub": member.address,
            "aud": AUDIENCE,
            "iss": self._settings.siwe_domain,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self._settings.token_ttl,
            "jti": secrets.token_hex(16),
        }
        if withdraw_only:
            claims["scope"] = WITHDRAW_SCOPE
        encoded = jwt.encode(claims, self._secret, algorithm="HS256")
        return Token(access_token=encoded, expires_in=self._settings.token_ttl, roles=member.roles.names())

    # ---- per request -----------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, *, withdrawal: bool = False) -> Member:
        """The member behind ``Authorization: Bearer <token>``; 401 or 403 otherwise.

        ``withdrawal``: the route revokes, pauses or reads the caller's own data, which a suspended
        SUBJECT may still do (SPEC §9.8); every other route refuses it, and refuses a token issued
        while it was suspended (``scope`` ``withdraw``) even after it is reinstated.
        """
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Problem(401, "not_authenticated", "log in first: Authorization: Bearer <token>")
        token = authorization[7:].strip()
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=self._settings.siwe_domain,
                options={"require": ["exp", "sub", "iat"]},
                leeway=0,
            )
            address = to_checksum_address(claims["sub"])
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Problem(401, "token_invalid", "the access token is invalid or expired; log in again") from None
        member = self._member(address)
        if withdrawal and member.is_member and member.suspended and Role.SUBJECT in member.roles:
            return member
        self._require_active(member)
        if claims.get("scope") == WITHDRAW_SCOPE and not withdrawal:
            raise Problem(403, "member_suspended", "this token was issued while suspended: log in again")
        return member

    def _member(self, address: str, *, fresh: bool = False) -> Member:
        head = self._ledger.head_block()
        with self._lock:
            cached = self._cache.get(address)
            if cached and cached[0] == head and not fresh:
                return cached[1]
        member = self._ledger.member(address)
        with self._lock:
            self._cache[address] = (head, member)
        return member

    @staticmethod
    def _require_active(member: Member) -> None:
        if not member.is_member:
            raise Problem(403, "not_a_member", "this account is not a member of the ledger")
        if member.suspended:
            raise Problem(403, "member_suspended", "this member is suspended")


def has_role(member: Member, *roles: Role) -> bool:
    return any(role in member.roles for role in roles)
