"""Login (SPEC §5): EIP-4361 challenges with single-use nonces, short-lived bearer tokens, and
roles read from the chain (cached for ``QCL_MEMBER_CACHE_SECONDS``; a suspension made through this
API bites at the member's next call)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from eth_utils import to_checksum_address
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import delete, update

from chain_client import Ledger, Member, Role
from db.models import AuthNonce
from db.store import Store, StoreUnavailable

from . import siwe
from .errors import Problem
from .settings import Settings
from .threads import in_thread

log = logging.getLogger("qcl.api")

CHALLENGE_LIFETIME = timedelta(minutes=10)
#: The ``scope`` claim of a token issued to a suspended SUBJECT (SPEC §9.8 "Withdrawal always
#: works"): it is accepted only by the routes that revoke, pause and read the subject's own data.
WITHDRAW_SCOPE = "withdraw"
#: Expired login nonces are deleted at most this often (seconds), by the challenge path itself.
NONCE_PURGE_INTERVAL = 60.0
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


def purge_expired_nonces(store: Store, now: float) -> int:
    """Delete the login nonces that expired before ``now``; returns how many.

    Safe at any time: an expired nonce can never be spent (``token`` requires ``expires_at > now``),
    so a deleted one is refused exactly as before (409 ``nonce_used``). Used nonces go too once
    expired. Keeps the table at most one challenge lifetime's worth of rows.
    """
    with store.session() as s:
        result = s.execute(delete(AuthNonce).where(AuthNonce.expires_at <= int(now)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DELETE's CursorResult has rowcount


class RateLimited(Problem):
    """429 ``rate_limited``: too many requests of one kind from one client or for one account."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"too many {what}; try again in {retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class RateLimiter:
    """The abuse limits (settings ``rate_limit_*``), counted per key in a moving window.

    Counters live in memory (one API process) or, when ``QCL_REDIS_URL`` is set, in Redis, shared
    by every API process. If Redis does not answer the request is let through and a warning
    logged: a down counter store must not lock everyone out of logging in.
    """

    def __init__(self, settings: Settings, *, key_prefix: str = "qcl") -> None:
        self.enabled = settings.rate_limits
        if settings.redis_url:
            self._storage = storage_from_string(
                settings.redis_url,
                key_prefix=key_prefix,
                wrap_exceptions=True,
                socket_connect_timeout=0.5,
                socket_timeout=0.5,
            )
        else:
            self._storage = storage_from_string("memory://", wrap_exceptions=True)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._rules: dict[str, list[RateLimitItem]] = {
            "challenge_address": parse_many(settings.rate_limit_challenge_address),
            "challenge_ip": parse_many(settings.rate_limit_challenge_ip),
            "token_ip": parse_many(settings.rate_limit_token_ip),
            "public_ip": parse_many(settings.rate_limit_public_ip),
        }

    def hit(self, rule: str, key: str, what: str) -> None:
        """Count one request under ``rule`` for ``key``; :class:`RateLimited` when over the limit."""
        if not self.enabled:
            return
        for item in self._rules[rule]:
            try:
                if self._limiter.hit(item, rule, key):
                    continue
                reset = self._limiter.get_window_stats(item, rule, key).reset_time
            except StorageError as exc:
                log.warning("rate-limit counters unavailable (%s); %s not limited", exc, rule)
                return
            raise RateLimited(what, max(1, math.ceil(reset - time.time())))


#: Verified tokens remembered per process (PyJWT's checks cost ~0.2 ms of CPU per request).
VERIFIED_TOKENS = 10_000


class Authenticator:
    def __init__(
        self, *, store: Store, ledger: Ledger, settings: Settings, secret: bytes, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._secret = secret
        self._clock = clock
        self._cache: dict[str, tuple[float, Member]] = {}
        self._refreshing: dict[str, threading.Lock] = {}
        #: Chain reads of a member's record under way, per event loop: the requests that find the
        #: record stale together await ONE read instead of each taking a worker thread to wait.
        self._reading: dict[tuple[int, str], asyncio.Future[Member]] = {}
        #: Tokens already verified: token -> (address, claims). A token is immutable and its
        #: signature checked once; its expiry is checked again on every use. Bounded.
        self._verified: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._purged_at = 0.0

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
        self._purge_now_and_then()
        return message.to_text(), nonce

    def _purge_now_and_then(self) -> None:
        """Delete expired nonces, at most every :data:`NONCE_PURGE_INTERVAL` seconds."""
        now = self._clock()
        with self._lock:
            if now - self._purged_at < NONCE_PURGE_INTERVAL:
                return
            self._purged_at = now
        try:
            purge_expired_nonces(self._store, now)
        except StoreUnavailable as exc:
            log.warning("expired login nonces not purged: %s", exc)

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
        address, claims = self._claims(authorization)
        return self._admit(self._member(address), claims, withdrawal)

    async def authenticate_async(self, authorization: str | None, *, withdrawal: bool = False) -> Member:
        """:meth:`authenticate` on the event loop: the chain is read (on a worker thread) only when
        the member's cached record is missing or stale."""
        address, claims = self._claims(authorization)
        member = self._cached(address)
        if member is None:
            member = await self._read_once(address)
        return self._admit(member, claims, withdrawal)

    async def _read_once(self, address: str) -> Member:
        key = (id(asyncio.get_running_loop()), address)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(in_thread(self._member, address))
            self._reading[key] = reading
            reading.add_done_callback(lambda _done: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    def _claims(self, authorization: str | None) -> tuple[str, dict[str, Any]]:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Problem(401, "not_authenticated", "log in first: Authorization: Bearer <token>")
        token = authorization[7:].strip()
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]["exp"]:  # as PyJWT decides: valid while now < exp
                return known
            raise Problem(401, "token_invalid", "the access token is invalid or expired; log in again")
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
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (address, claims)
        return address, claims

    def _admit(self, member: Member, claims: dict[str, Any], withdrawal: bool) -> Member:
        if withdrawal and member.is_member and member.suspended and Role.SUBJECT in member.roles:
            return member
        self._require_active(member)
        if claims.get("scope") == WITHDRAW_SCOPE and not withdrawal:
            raise Problem(403, "member_suspended", "this token was issued while suspended: log in again")
        return member

    def _cached(self, address: str) -> Member | None:
        """The member's record when cached and fresh, else None (no chain read)."""
        with self._lock:
            cached = self._cache.get(address)
        return cached[1] if cached and time.monotonic() < cached[0] else None

    def _member(self, address: str, *, fresh: bool = False) -> Member:
        """The caller's registry record, read from the chain at most every ``member_cache_seconds``
        (a suspension through this API takes effect at once: :meth:`forget`; one made elsewhere
        within that time; the ledger itself refuses a suspended member's releases regardless)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(address)
            if cached and now < cached[0] and not fresh:
                return cached[1]
            refreshing = self._refreshing.setdefault(address, threading.Lock())
        with refreshing:  # one read of the chain per member, however many requests wait for it
            with self._lock:
                cached = self._cache.get(address)
                if cached and time.monotonic() < cached[0] and not fresh:
                    return cached[1]
            member = self._ledger.member(address)
            with self._lock:
                self._cache[address] = (time.monotonic() + self._settings.member_cache_seconds, member)
            return member

    def forget(self, address: str) -> None:
        """Drop the cached record of ``address`` (after this process changed it on chain)."""
        with self._lock:
            self._cache.pop(address, None)

    @staticmethod
    def _require_active(member: Member) -> None:
        if not member.is_member:
            raise Problem(403, "not_a_member", "this account is not a member of the ledger")
        if member.suspended:
            raise Problem(403, "member_suspended", "this member is suspended")


def has_role(member: Member, *roles: Role) -> bool:
    return any(role in member.roles for role in roles)
