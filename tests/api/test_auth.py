"""Login (api/auth.py) in isolation: challenges, single-use nonces, token claims, bearer checks, the
member cache. A stand-in ledger (head block and members set by the test) and a SQLite store, no
chain: these run in a second, so that `make mutation` can run them against every mutant."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr
from sqlalchemy import select, update

from api import auth as auth_module
from api import siwe
from api.auth import AUDIENCE, CHALLENGE_LIFETIME, STATEMENT, Authenticator, Token, has_role, jwt_secret
from api.errors import Problem
from api.settings import Settings
from chain_client import Member, Role
from db.models import AuthNonce
from db.store import Store

SECRET = b"s" * 48
CHAIN_ID = 31337
T0 = int(time.time()) - 60  # the test clock's start: whole seconds, a minute ago (tokens are checked against real time)


@dataclass
class FakeLedger:
    """What the authenticator reads from the chain: the chain id, the head block and members."""

    chain_id: int = CHAIN_ID
    head: int = 1
    members: dict[str, Member] = field(default_factory=dict)
    member_reads: int = 0

    def head_block(self) -> int:
        return self.head

    def member(self, address: str) -> Member:
        self.member_reads += 1
        return self.members.get(address, Member(address, Role(0), False, 0, b"\0" * 32, b""))

    def enrol(self, address: str, roles: Role, *, suspended: bool = False) -> None:
        self.members[address] = Member(address, roles, suspended, 1, b"\0" * 32, b"")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Login:
    auth: Authenticator
    ledger: FakeLedger
    store: Store
    clock: Clock
    settings: Settings
    account: LocalAccount


@pytest.fixture
def login(tmp_path: Path) -> Iterator[Login]:
    settings = Settings(
        env="test", data_dir=tmp_path, public_url="https://qcl.example.org:8443/api", jwt_secret=SecretStr("x" * 32)
    )
    store = Store.sqlite(tmp_path / "auth.db")
    ledger = FakeLedger()
    clock = Clock(T0 + 0.75)
    account = Account.create()
    ledger.enrol(account.address, Role.CONSUMER | Role.AUDITOR)
    auth = Authenticator(store=store, ledger=ledger, settings=settings, secret=SECRET, clock=clock)  # type: ignore[arg-type]
    yield Login(auth, ledger, store, clock, settings, account)
    store.dispose()


def sign(account: LocalAccount, text: str) -> str:
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


def problem(call: object, *args: object) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, options={"verify_exp": False})


def nonce_row(store: Store, nonce: str) -> AuthNonce:
    with store.session() as s:
        row = s.execute(select(AuthNonce).where(AuthNonce.nonce == nonce)).scalar_one()
        s.expunge(row)
        return row


def bearer(login: Login) -> str:
    text, _ = login.auth.challenge(login.account.address)
    return "Bearer " + login.auth.token(text, sign(login.account, text)).access_token


def forged(claims: dict[str, object], *, secret: bytes = SECRET, algorithm: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, secret, algorithm=algorithm)


def good_claims(login: Login, **changes: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, object] = {
        "sub": login.account.address,
        "aud": AUDIENCE,
        "iss": "qcl.example.org:8443",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "0" * 32,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# ---- the token key -------------------------------------------------------------------------------


def test_jwt_secret_from_settings_is_its_bytes(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path, jwt_secret=SecretStr("k" * 40))
    assert jwt_secret(settings) == b"k" * 40
    assert not (tmp_path / "jwt.secret").exists()


def test_jwt_secret_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet"
    settings = Settings(env="test", data_dir=data_dir)
    first = jwt_secret(settings)
    path = data_dir / "jwt.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first == path.read_text().strip().encode()
    assert len(first) == 64  # token_urlsafe(48): 48 random bytes, base64url without padding
    assert len(base64.urlsafe_b64decode(first + b"=" * (-len(first) % 4))) == 48
    assert jwt_secret(settings) == first
    assert jwt_secret(Settings(env="test", data_dir=tmp_path / "other")) != first


def test_jwt_secret_is_generated_in_an_existing_data_dir(tmp_path: Path) -> None:
    secret = jwt_secret(Settings(env="test", data_dir=tmp_path))
    assert secret == (tmp_path / "jwt.secret").read_text().strip().encode()


# ---- challenges --------------------------------------------------------------------------------


def test_challenge_is_the_documented_message_and_stores_its_nonce(login: Login) -> None:
    text, nonce = login.auth.challenge(login.account.address.lower())
    message = siwe.SiweMessage.parse(text)
    issued = datetime.fromtimestamp(T0, UTC)  # the clock's whole seconds
    assert message == siwe.SiweMessage(
        domain="qcl.example.org:8443",
        address=login.account.address,
        uri="https://qcl.example.org:8443/api",
        version="1",
        chain_id=CHAIN_ID,
        nonce=nonce,
        issued_at=issued,
        statement=STATEMENT,
        expiration_time=issued + CHALLENGE_LIFETIME,
    )
    assert CHALLENGE_LIFETIME == timedelta(minutes=10)
    assert STATEMENT == "Sign in to the Quanchenglian data-sharing ledger."
    row = nonce_row(login.store, nonce)
    assert (row.address, row.expires_at, row.used_at) == (login.account.address, T0 + 600, None)


def test_each_challenge_has_its_own_nonce(login: Login) -> None:
    nonces = {login.auth.challenge(login.account.address)[1] for _ in range(3)}
    assert len(nonces) == 3


# ---- tokens ------------------------------------------------------------------------------------


def test_token_for_a_signed_challenge(login: Login) -> None:
    text, nonce = login.auth.challenge(login.account.address)
    login.clock.now = T0 + 30.9
    token = login.auth.token(text, sign(login.account, text))
    assert isinstance(token, Token)
    assert token.expires_in == login.settings.token_ttl == 900
    assert token.roles == ["CONSUMER", "AUDITOR"]
    assert jwt.get_unverified_header(token.access_token)["alg"] == "HS256"
    claims = claims_of(token.access_token)
    jti = claims.pop("jti")
    assert isinstance(jti, str) and len(jti) == 32 and int(jti, 16) >= 0
    assert claims == {
        "sub": login.account.address,
        "aud": "qcl-api",
        "iss": "qcl.example.org:8443",
        "iat": T0 + 30,
        "nbf": T0 + 30,
        "exp": T0 + 30 + 900,
    }
    assert nonce_row(login.store, nonce).used_at == T0 + 30


def test_tokens_differ_by_jti(login: Login) -> None:
    first, second = bearer(login), bearer(login)
    assert claims_of(first[7:])["jti"] != claims_of(second[7:])["jti"]


def test_a_nonce_is_spent_once(login: Login) -> None:
    text, _ = login.auth.challenge(login.account.address)
    signature = sign(login.account, text)
    login.auth.token(text, signature)
    replay = problem(login.auth.token, text, signature)
    assert (replay.status, replay.code) == (409, "nonce_used")
    assert str(replay) == "this login nonce was not issued to this address, expired, or was used"


def test_a_nonce_issued_to_another_address_is_refused(login: Login) -> None:
    other = Account.create()
    login.ledger.enrol(other.address, Role.SUBJECT)
    text, _ = login.auth.challenge(login.account.address)
    theirs = siwe.SiweMessage.parse(text)
    mine = replace(theirs, address=other.address).to_text()
    refused = problem(login.auth.token, mine, sign(other, mine))
    assert (refused.status, refused.code) == (409, "nonce_used")
    # ... and the nonce is still the original address's to spend
    login.auth.token(text, sign(login.account, text))


def test_an_unknown_nonce_is_refused(login: Login) -> None:
    text, nonce = login.auth.challenge(login.account.address)
    mine = text.replace(f"Nonce: {nonce}", "Nonce: aaaaaaaaaaaaaaaaaaaaaa")
    refused = problem(login.auth.token, mine, sign(login.account, mine))
    assert (refused.status, refused.code) == (409, "nonce_used")


@pytest.mark.parametrize(("expires_after", "accepted"), [(5, False), (6, True)])  # seconds after T0: ids stable
def test_the_stored_nonce_expiry_is_checked_strictly(login: Login, expires_after: int, accepted: bool) -> None:
    """A nonce whose stored expiry is now (or earlier) is spent; one second later it is not."""
    text, nonce = login.auth.challenge(login.account.address)
    with login.store.session() as s:
        s.execute(update(AuthNonce).where(AuthNonce.nonce == nonce).values(expires_at=T0 + expires_after))
    login.clock.now = T0 + 5.5
    if accepted:
        assert login.auth.token(text, sign(login.account, text)).roles
    else:
        assert problem(login.auth.token, text, sign(login.account, text)).code == "nonce_used"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ("malformed", 401, "siwe_malformed"),
        ("signature", 401, "signature_invalid"),
        ("expired", 401, "expired"),
        ("domain", 401, "wrong_domain"),
        ("chain", 401, "wrong_chain"),
        ("lifetime", 401, "lifetime_too_long"),
    ],
)
def test_refused_messages_are_401_with_the_siwe_code(login: Login, change: str, status: int, code: str) -> None:
    text, _ = login.auth.challenge(login.account.address)
    message = siwe.SiweMessage.parse(text)
    signer = login.account
    if change == "malformed":
        text = text.replace("Version: 1", "Version: 2")
    elif change == "signature":
        signer = Account.create()
    elif change == "expired":
        login.clock.now = T0 + 600
    elif change == "domain":
        text = replace(message, domain="evil.example.org").to_text()
    elif change == "chain":
        text = replace(message, chain_id=1).to_text()
    elif change == "lifetime":
        text = replace(message, expiration_time=message.issued_at + CHALLENGE_LIFETIME + timedelta(seconds=1)).to_text()
    refused = problem(login.auth.token, text, sign(signer, text))
    assert (refused.status, refused.code) == (status, code)
    with pytest.raises(siwe.SiweError) as direct:  # the detail is the SIWE refusal, word for word
        siwe.verify(
            text,
            sign(signer, text),
            domain=login.settings.siwe_domain,
            chain_id=CHAIN_ID,
            now=datetime.fromtimestamp(int(login.clock.now), UTC),
        )
    assert str(refused) == str(direct.value) and str(refused)


def test_a_challenge_is_good_until_just_before_it_expires(login: Login) -> None:
    text, _ = login.auth.challenge(login.account.address)
    login.clock.now = T0 + 599.99
    assert login.auth.token(text, sign(login.account, text)).roles == ["CONSUMER", "AUDITOR"]


def test_tokens_only_for_active_members(login: Login) -> None:
    stranger = Account.create()
    text, _ = login.auth.challenge(stranger.address)
    refused = problem(login.auth.token, text, sign(stranger, text))
    assert (refused.status, refused.code, str(refused)) == (
        403,
        "not_a_member",
        "this account is not a member of the ledger",
    )
    login.ledger.enrol(login.account.address, Role.CONSUMER, suspended=True)
    text, _ = login.auth.challenge(login.account.address)
    refused = problem(login.auth.token, text, sign(login.account, text))
    assert (refused.status, refused.code, str(refused)) == (403, "member_suspended", "this member is suspended")


def test_token_reads_the_member_afresh_even_at_the_same_block(login: Login) -> None:
    authorization = bearer(login)
    login.auth.authenticate(authorization)  # cached at head 1
    login.ledger.enrol(login.account.address, Role.CONSUMER, suspended=True)  # same head
    text, _ = login.auth.challenge(login.account.address)
    assert problem(login.auth.token, text, sign(login.account, text)).code == "member_suspended"


# ---- bearer tokens per request -------------------------------------------------------------------


def test_authenticate_returns_the_member(login: Login) -> None:
    member = login.auth.authenticate(bearer(login))
    assert member.address == login.account.address
    assert member.roles == Role.CONSUMER | Role.AUDITOR


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", "BEARER ", "Bearer   "])
def test_the_scheme_is_case_insensitive_and_spaces_are_trimmed(login: Login, scheme: str) -> None:
    token = bearer(login)[7:]
    assert login.auth.authenticate(f"{scheme}{token}  ").address == login.account.address


@pytest.mark.parametrize("authorization", [None, "", "Basic abc", "Bearer", "Token abc", "Bearerabc"])
def test_no_bearer_token_is_401_not_authenticated(login: Login, authorization: str | None) -> None:
    refused = problem(login.auth.authenticate, authorization)
    assert (refused.status, refused.code, str(refused)) == (
        401,
        "not_authenticated",
        "log in first: Authorization: Bearer <token>",
    )


def test_an_empty_bearer_token_is_invalid(login: Login) -> None:
    assert problem(login.auth.authenticate, "Bearer  ").code == "token_invalid"


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "HS512",
        "none",
        "audience",
        "issuer",
        "expired",
        "not yet valid",
        "no exp",
        "no sub",
        "no iat",
        "sub not an address",
        "sub not a string",
        "garbage",
    ],
)
def test_bad_tokens_are_401_token_invalid(login: Login, case: str) -> None:
    now = int(datetime.now(UTC).timestamp())
    authorization = {
        "wrong secret": lambda: forged(good_claims(login), secret=b"t" * 48),
        "HS512": lambda: forged(good_claims(login), algorithm="HS512"),
        "none": lambda: "Bearer " + jwt.encode(good_claims(login), None, algorithm="none"),  # type: ignore[arg-type]
        "audience": lambda: forged(good_claims(login, aud="other-api")),
        "issuer": lambda: forged(good_claims(login, iss="evil.example.org")),
        "expired": lambda: forged(good_claims(login, iat=now - 900, exp=now - 5)),
        "not yet valid": lambda: forged(good_claims(login, nbf=now + 60)),
        "no exp": lambda: forged(good_claims(login, exp=None)),
        "no sub": lambda: forged(good_claims(login, sub=None)),
        "no iat": lambda: forged(good_claims(login, iat=None)),
        "sub not an address": lambda: forged(good_claims(login, sub="0x1234")),
        "sub not a string": lambda: forged(good_claims(login, sub=["0x" + "00" * 20])),
        "garbage": lambda: "Bearer not.a.token",
    }[case]()
    refused = problem(login.auth.authenticate, authorization)
    assert (refused.status, refused.code, str(refused)) == (
        401,
        "token_invalid",
        "the access token is invalid or expired; log in again",
    )


def test_a_good_forged_shape_is_accepted(login: Login) -> None:
    """The control for the cases above: the same claims, nothing wrong, are accepted."""
    assert login.auth.authenticate(forged(good_claims(login))).address == login.account.address


def test_expiry_has_no_leeway(login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token is refused from its ``exp`` second on: PyJWT is given no grace period."""
    claims = good_claims(login, iat=T0, nbf=T0, exp=T0 + 900)
    moment = datetime.fromtimestamp(T0 + 900.5, UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return moment

    monkeypatch.setattr(jwt.api_jwt, "datetime", Frozen)
    assert problem(login.auth.authenticate, forged(claims)).code == "token_invalid"
    moment = datetime.fromtimestamp(T0 + 899.5, UTC)
    assert login.auth.authenticate(forged(claims)).address == login.account.address


def test_a_lower_case_sub_is_checksummed(login: Login) -> None:
    member = login.auth.authenticate(forged(good_claims(login, sub=login.account.address.lower())))
    assert member.address == login.account.address


def test_authenticate_refuses_members_that_left_or_were_suspended(login: Login) -> None:
    authorization = bearer(login)
    login.ledger.enrol(login.account.address, Role.CONSUMER, suspended=True)
    login.auth.forget(login.account.address)  # what POST /v1/members/{a}/suspend does
    assert problem(login.auth.authenticate, authorization).code == "member_suspended"
    del login.ledger.members[login.account.address]
    login.auth.forget(login.account.address)
    assert problem(login.auth.authenticate, authorization).code == "not_a_member"


def test_members_are_cached_for_member_cache_seconds(login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    import api.auth as auth_module

    authorization = bearer(login)
    reads = login.ledger.member_reads
    login.auth.authenticate(authorization)
    login.auth.authenticate(authorization)
    assert login.ledger.member_reads == reads  # token() just read it
    login.ledger.enrol(login.account.address, Role.SUBJECT)
    assert login.auth.authenticate(authorization).roles == Role.CONSUMER | Role.AUDITOR  # still cached
    now = time.monotonic()
    ttl = login.auth._settings.member_cache_seconds
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now + ttl + 0.01)  # the cache time is up
    assert login.auth.authenticate(authorization).roles == Role.SUBJECT
    assert login.ledger.member_reads == reads + 1
    login.auth.authenticate(authorization)
    assert login.ledger.member_reads == reads + 1  # cached again
    login.ledger.enrol(login.account.address, Role.PROVIDER)
    login.auth.forget(login.account.address)  # a change made through this API bites at once
    assert login.auth.authenticate(authorization).roles == Role.PROVIDER
    assert login.ledger.member_reads == reads + 2


def test_the_cache_is_per_address(login: Login) -> None:
    other = Account.create()
    login.ledger.enrol(other.address, Role.PROVIDER)
    mine = bearer(login)
    text, _ = login.auth.challenge(other.address)
    theirs = "Bearer " + login.auth.token(text, sign(other, text)).access_token
    assert login.auth.authenticate(mine).roles == Role.CONSUMER | Role.AUDITOR
    assert login.auth.authenticate(theirs).roles == Role.PROVIDER


def test_has_role_is_any_of(login: Login) -> None:
    member = login.ledger.member(login.account.address)
    assert has_role(member, Role.AUDITOR)
    assert has_role(member, Role.ADMIN, Role.CONSUMER)
    assert not has_role(member, Role.ADMIN)
    assert not has_role(member, Role.ADMIN, Role.SUBJECT)
    assert not has_role(member)


def test_the_module_has_what_the_api_imports() -> None:
    assert auth_module.AUDIENCE == "qcl-api"
    assert json.loads(json.dumps(auth_module.Token("a", 1, ["X"]).__dict__)) == {
        "access_token": "a",
        "expires_in": 1,
        "roles": ["X"],
    }


def test_a_verified_token_is_refused_from_its_expiry_on(login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token verified once is remembered (its signature is not checked again), but its ``exp``
    is: refused from that second on, as PyJWT refuses it."""
    import api.auth

    authorization = bearer(login)
    assert login.auth.authenticate(authorization).address == login.account.address
    exp = int(claims_of(authorization[7:])["exp"])  # type: ignore[call-overload]
    monkeypatch.setattr(api.auth.time, "time", lambda: exp - 0.5)
    assert login.auth.authenticate(authorization).address == login.account.address
    monkeypatch.setattr(api.auth.time, "time", lambda: float(exp))
    refused = problem(login.auth.authenticate, authorization)
    assert (refused.status, refused.code) == (401, "token_invalid")


def test_remembered_tokens_are_bounded_and_verified_again(login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound the remembered tokens are forgotten; a forgotten token is verified again."""
    import api.auth

    monkeypatch.setattr(api.auth, "VERIFIED_TOKENS", 1)
    first, second = bearer(login), bearer(login)
    assert first != second
    for authorization in (first, second, first, second):
        assert login.auth.authenticate(authorization).address == login.account.address
    forged_one = forged(good_claims(login), secret=b"t" * 48)
    assert problem(login.auth.authenticate, forged_one).code == "token_invalid"


def test_requests_finding_a_stale_record_share_one_read(login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    """128 requests of one member arriving as its cached record goes stale: ONE chain read (on one
    worker thread) answers them all, and a suspension read then applies to every one of them."""
    import asyncio

    import api.auth as auth_module

    authorization = bearer(login)
    login.auth.authenticate(authorization)
    reads = login.ledger.member_reads
    login.ledger.enrol(login.account.address, Role.CONSUMER, suspended=True)
    real_member = login.ledger.member
    threads: set[int] = set()

    def slow_member(address: str) -> Member:
        threads.add(threading.get_ident())
        time.sleep(0.2)  # the chain takes its time: every request arrives while the read is under way
        return real_member(address)

    monkeypatch.setattr(login.ledger, "member", slow_member)
    hops: list[object] = []
    real_hop = auth_module.in_thread

    def counted_hop(func, *args):  # type: ignore[no-untyped-def]
        hops.append(func)
        return real_hop(func, *args)

    monkeypatch.setattr(auth_module, "in_thread", counted_hop)
    later = time.monotonic() + login.auth._settings.member_cache_seconds + 0.01
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: later)

    async def many() -> list[object]:
        return await asyncio.gather(
            *(login.auth.authenticate_async(authorization) for _ in range(128)), return_exceptions=True
        )

    outcomes = asyncio.run(many())
    assert login.ledger.member_reads == reads + 1 and len(threads) == 1
    assert len(hops) == 1  # not one worker thread per request, each waiting for the first's read
    assert {o.code for o in outcomes if isinstance(o, Problem)} == {"member_suspended"}
    assert all(isinstance(o, Problem) for o in outcomes)
