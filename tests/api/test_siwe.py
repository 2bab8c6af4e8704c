"""Sign-In with Ethereum (EIP-4361): exact text, strict parsing, verification failure codes."""

from __future__ import annotations

import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.siwe import CLOCK_SKEW, SiweError, SiweMessage, challenge, new_nonce, verify

EXAMPLE_ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
EXAMPLE_STATEMENT = "I accept the ServiceOrg Terms of Service: https://service.org/tos"
EXAMPLE_RESOURCES = (
    "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
    "https://example.com/my-web2-claim.json",
)
EXAMPLE = (
    "service.org wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
    "\n"
    "I accept the ServiceOrg Terms of Service: https://service.org/tos\n"
    "\n"
    "URI: https://service.org/login\n"
    "Version: 1\n"
    "Chain ID: 1\n"
    "Nonce: 32891756\n"
    "Issued At: 2021-09-30T16:25:24Z\n"
    "Resources:\n"
    "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
    "- https://example.com/my-web2-claim.json"
)

NOW = datetime(2026, 11, 26, 22, 50, tzinfo=UTC)
DOMAIN = "qcl.example.org"
CHAIN_ID = 31337
NONCE = "k3Jd9QxPzL0aTm7Rw2Vb"


# --------------------------------------------------------------------------------------------------------------
# Helpers


def sign(account: LocalAccount, text: str) -> str:
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


def login_message(account: LocalAccount, **changes: object) -> SiweMessage:
    """A message that ``verify`` accepts at ``NOW`` (issued a minute ago, five minutes left), with changes."""
    message = SiweMessage(
        domain=DOMAIN,
        address=account.address,
        uri=f"https://{DOMAIN}/login",
        version="1",
        chain_id=CHAIN_ID,
        nonce=NONCE,
        issued_at=NOW - timedelta(minutes=1),
        statement="Sign in to Quanchenglian.",
        expiration_time=NOW + timedelta(minutes=5),
    )
    return replace(message, **changes)  # type: ignore[arg-type]


def check(text: str, signature: str | bytes, **overrides: object) -> SiweMessage:
    """``verify`` with the service's expected values at ``NOW``, overridable."""
    expected: dict[str, object] = {"domain": DOMAIN, "chain_id": CHAIN_ID, "nonce": NONCE, "now": NOW}
    expected.update(overrides)
    return verify(text, signature, **expected)  # type: ignore[arg-type]


def refused(text: str, signature: str | bytes, **overrides: object) -> SiweError:
    with pytest.raises(SiweError) as caught:
        check(text, signature, **overrides)
    return caught.value


def parse_error(text: str) -> SiweError:
    with pytest.raises(SiweError) as caught:
        SiweMessage.parse(text)
    return caught.value


@pytest.fixture(scope="module")
def account() -> LocalAccount:
    return Account.create()


# --------------------------------------------------------------------------------------------------------------
# The exact text


def test_eip_example_parses_round_trips_and_has_the_right_fields() -> None:
    message = SiweMessage.parse(EXAMPLE)

    assert message.to_text() == EXAMPLE
    assert message.to_text().encode() == EXAMPLE.encode()
    assert message == SiweMessage(
        domain="service.org",
        address=EXAMPLE_ADDRESS,
        uri="https://service.org/login",
        version="1",
        chain_id=1,
        nonce="32891756",
        issued_at=datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC),
        statement=EXAMPLE_STATEMENT,
        resources=EXAMPLE_RESOURCES,
    )
    assert message.scheme is None
    assert message.expiration_time is None and message.not_before is None and message.request_id is None
    assert message.issued_at.utcoffset() == timedelta(0)


def test_without_statement_the_address_is_followed_by_three_line_feeds() -> None:
    text = (
        "service.org wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
        "\n"
        "\n"
        "URI: https://service.org/login\n"
        "Version: 1\n"
        "Chain ID: 1\n"
        "Nonce: 32891756\n"
        "Issued At: 2021-09-30T16:25:24Z"
    )
    message = SiweMessage.parse(text)

    assert message.statement is None
    assert message.resources == ()
    assert message.to_text() == text
    assert replace(SiweMessage.parse(EXAMPLE), statement=None, resources=()).to_text() == text


def test_with_scheme() -> None:
    text = EXAMPLE.replace("service.org wants", "https://service.org wants", 1)
    message = SiweMessage.parse(text)

    assert message.scheme == "https"
    assert message.domain == "service.org"
    assert message.to_text() == text
    assert text.startswith("https://service.org wants you to sign in with your Ethereum account:\n")


def test_every_optional_field_in_order_with_port_and_fractional_seconds() -> None:
    text = (
        "http://localhost:8080 wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
        "\n"
        "Sign in (once) & agree: terms/v2?lang=en#top\n"
        "\n"
        "URI: http://localhost:8080/login?next=%2Fhome\n"
        "Version: 1\n"
        "Chain ID: 31337\n"
        "Nonce: abcDEF123456\n"
        "Issued At: 2026-11-26T22:50:00.5Z\n"
        "Expiration Time: 2026-11-26T23:00:00Z\n"
        "Not Before: 2026-11-26T22:50:00.123456Z\n"
        "Request ID: req-42:a@b\n"
        "Resources:\n"
        "- urn:qcl:grant:7"
    )
    message = SiweMessage.parse(text)

    assert (message.scheme, message.domain, message.chain_id) == ("http", "localhost:8080", 31337)
    assert message.issued_at == datetime(2026, 11, 26, 22, 50, 0, 500000, tzinfo=UTC)
    assert message.expiration_time == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    assert message.not_before == datetime(2026, 11, 26, 22, 50, 0, 123456, tzinfo=UTC)
    assert message.request_id == "req-42:a@b"
    assert message.resources == ("urn:qcl:grant:7",)
    assert message.to_text() == text


def test_challenge_renders_whole_seconds_with_z_and_checksums_the_address() -> None:
    message = challenge(
        domain=DOMAIN,
        address=EXAMPLE_ADDRESS.lower(),
        uri=f"https://{DOMAIN}/login",
        chain_id=CHAIN_ID,
        nonce=NONCE,
        lifetime=timedelta(minutes=10),
        statement="Sign in to Quanchenglian.",
        now=datetime(2026, 11, 26, 22, 50, 0, 987654, tzinfo=UTC),
    )

    assert message.address == EXAMPLE_ADDRESS
    assert message.to_text() == (
        "qcl.example.org wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
        "\n"
        "Sign in to Quanchenglian.\n"
        "\n"
        "URI: https://qcl.example.org/login\n"
        "Version: 1\n"
        "Chain ID: 31337\n"
        "Nonce: k3Jd9QxPzL0aTm7Rw2Vb\n"
        "Issued At: 2026-11-26T22:50:00Z\n"
        "Expiration Time: 2026-11-26T23:00:00Z"
    )


def test_challenge_converts_other_offsets_to_utc() -> None:
    east = timezone(timedelta(hours=8))
    message = challenge(
        domain=DOMAIN,
        address=EXAMPLE_ADDRESS,
        uri=f"https://{DOMAIN}/",
        chain_id=1,
        nonce=NONCE,
        lifetime=timedelta(minutes=5),
        statement=None,
        now=datetime(2026, 11, 27, 6, 50, tzinfo=east),
    )

    assert "Issued At: 2026-11-26T22:50:00Z\nExpiration Time: 2026-11-26T22:55:00Z" in message.to_text()
    assert message.issued_at.tzinfo is UTC


@pytest.mark.parametrize(
    "changes",
    [
        {"address": "0xC02AAA39b223FE8D0A0e5C4F27eAD9083C756Cc2"},  # mixed case, wrong checksum
        {"lifetime": timedelta(0)},
        {"lifetime": timedelta(milliseconds=999)},
        {"nonce": "short"},
        {"statement": "two\nlines"},
    ],
)
def test_challenge_refuses_bad_input(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "domain": DOMAIN,
        "address": EXAMPLE_ADDRESS,
        "uri": f"https://{DOMAIN}/",
        "chain_id": 1,
        "nonce": NONCE,
        "lifetime": timedelta(minutes=5),
        "statement": None,
        "now": NOW,
    }
    arguments.update(changes)
    with pytest.raises(SiweError) as caught:
        challenge(**arguments)  # type: ignore[arg-type]
    assert caught.value.code == "malformed"


def test_new_nonce_is_long_random_and_alphanumeric() -> None:
    nonces = {new_nonce() for _ in range(200)}

    assert len(nonces) == 200
    for nonce in nonces:
        assert len(nonce) >= 16
        assert set(nonce) <= set(string.ascii_letters + string.digits)
    assert replace(SiweMessage.parse(EXAMPLE), nonce=next(iter(nonces))).nonce in nonces


# --------------------------------------------------------------------------------------------------------------
# Verification


def test_verify_accepts_a_fresh_signature(account: LocalAccount) -> None:
    message = login_message(account)
    text = message.to_text()

    assert check(text, sign(account, text)) == message
    assert check(text, bytes.fromhex(sign(account, text)[2:])) == message
    assert check(text, sign(account, text).upper().replace("0X", "0x"), nonce=None) == message


def test_verify_accepts_challenge_signed_by_the_wallet(account: LocalAccount) -> None:
    nonce = new_nonce()
    message = challenge(
        domain=DOMAIN,
        address=account.address.lower(),
        uri=f"https://{DOMAIN}/login",
        chain_id=CHAIN_ID,
        nonce=nonce,
        lifetime=timedelta(minutes=10),
        statement="Sign in to Quanchenglian.",
        now=NOW,
    )
    text = message.to_text()

    assert check(text, sign(account, text), nonce=nonce, now=NOW + timedelta(minutes=9, seconds=59)) == message


def test_verify_accepts_recovery_byte_zero_or_one(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    raw = bytes.fromhex(sign(account, text)[2:])

    assert check(text, raw[:64] + bytes([raw[64] - 27])).address == account.address


def test_validity_window_boundaries(account: LocalAccount) -> None:
    message = login_message(account, not_before=NOW, issued_at=NOW + CLOCK_SKEW)
    text = message.to_text()
    signature = sign(account, text)

    assert check(text, signature) == message  # not_before == now, issued exactly at the skew limit
    assert refused(text, signature, now=message.expiration_time).code == "expired"
    assert refused(text, signature, now=NOW - timedelta(microseconds=1)).code == "not_yet_valid"


@pytest.mark.parametrize(
    "changes, overrides, code",
    [
        ({"domain": "evil.example.org"}, {}, "wrong_domain"),
        ({"domain": "qcl.example.org:8443"}, {}, "wrong_domain"),
        ({}, {"domain": "QCL.example.org"}, "wrong_domain"),
        ({"chain_id": 1}, {}, "wrong_chain"),
        ({"nonce": "someOtherNonce42"}, {}, "wrong_nonce"),
        ({"expiration_time": NOW - timedelta(seconds=1)}, {}, "expired"),
        ({"expiration_time": NOW}, {}, "expired"),
        ({"not_before": NOW + timedelta(seconds=1)}, {}, "not_yet_valid"),
        (
            {"issued_at": NOW + CLOCK_SKEW + timedelta(seconds=1), "expiration_time": NOW + timedelta(minutes=5)},
            {},
            "not_yet_valid",
        ),
        ({"expiration_time": NOW + timedelta(minutes=9, seconds=1)}, {}, "lifetime_too_long"),
        ({"expiration_time": None}, {}, "lifetime_too_long"),
        ({}, {"max_lifetime": timedelta(minutes=5)}, "lifetime_too_long"),
        ({"issued_at": NOW + timedelta(seconds=30), "expiration_time": NOW + timedelta(seconds=10)}, {}, "expired"),
    ],
)
def test_verify_failure_codes(
    account: LocalAccount, changes: dict[str, object], overrides: dict[str, object], code: str
) -> None:
    text = login_message(account, **changes).to_text()

    error = refused(text, sign(account, text), **overrides)

    assert error.code == code
    assert isinstance(error, ValueError)


def test_signature_by_another_key(account: LocalAccount) -> None:
    text = login_message(account).to_text()

    error = refused(text, sign(Account.create(), text))

    assert error.code == "signature_invalid"
    assert account.address in str(error)


def test_signature_over_a_slightly_different_text(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    other = login_message(account, statement="Sign in to Quanchenglian!").to_text()

    assert refused(text, sign(account, other)).code == "signature_invalid"
    assert refused(other, sign(account, text)).code == "signature_invalid"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[2:],  # no 0x prefix
        lambda s: s[:-1] + "g",  # not hex
        lambda s: s[:-2],  # 64.5 bytes
        lambda s: s[:-2][:-2] + "1b",  # 64 bytes
        lambda s: s[:130],  # 64 bytes: r || s only
        lambda s: s + "00",  # 66 bytes
        lambda s: "",
        lambda s: "0x",
        lambda s: " " + s,
        lambda s: s + "\n",
        lambda s: "0X" + s[2:],
        lambda s: s[:-2] + "1d",  # v = 29
        lambda s: s[:-2] + "ff",  # v = 255 (eth-account would read it as an EIP-155 v)
        lambda s: "0x" + "00" * 64 + "1b",  # r = s = 0
        lambda s: "0x" + "ff" * 64 + "1b",  # r, s >= curve order
        lambda s: bytes.fromhex(s[2:])[:64],  # 64 raw bytes
        lambda s: b"",
        lambda s: None,
        lambda s: 12345,
    ],
)
def test_malformed_signature_is_signature_invalid(account: LocalAccount, mangle: object) -> None:
    text = login_message(account).to_text()

    error = refused(text, mangle(sign(account, text)))  # type: ignore[operator]

    assert error.code == "signature_invalid"


def test_recovery_byte_other_than_27_or_28_is_refused_before_recovery(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    signature = sign(account, text)

    for v in ("02", "1a", "1d", "23", "ff"):
        error = refused(text, signature[:-2] + v)
        assert error.code == "signature_invalid"
        assert "v must be 27 or 28" in str(error)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda t, a: t.replace(a, a.lower()), id="lower-case address"),
        pytest.param(lambda t, a: t.replace(a, "0x" + a[2:].upper()), id="upper-case address"),
        pytest.param(lambda t, a: t.replace(f"Nonce: {NONCE}", "Nonce: k3Jd9Qx-PzL0"), id="non-alphanumeric nonce"),
        pytest.param(lambda t, a: t.replace(f"Nonce: {NONCE}", "Nonce: k3Jd9Qx"), id="7-char nonce"),
        pytest.param(lambda t, a: t.replace(f"Nonce: {NONCE}", "Nonce: k3Jd9Qxé"), id="non-ASCII nonce"),
        pytest.param(lambda t, a: t.replace("\n", "\r\n"), id="CRLF line endings"),
        pytest.param(lambda t, a: t + "\n", id="extra trailing newline"),
        pytest.param(lambda t, a: "\n" + t, id="leading newline"),
        pytest.param(lambda t, a: t.replace("\nNonce:", "\nSession: x\nNonce:"), id="unknown field line"),
        pytest.param(lambda t, a: t + "\nFoo: bar", id="unknown trailing field"),
        pytest.param(lambda t, a: t.replace("Quanchenglian.", "Quanchenglian.\nAnd more."), id="multi-line statement"),
        pytest.param(lambda t, a: t.replace("Version: 1", "Version: 2"), id="version 2"),
        pytest.param(lambda t, a: t.replace("Chain ID: 31337", "Chain ID: 031337"), id="chain id leading zero"),
        pytest.param(lambda t, a: t.replace("Chain ID: 31337", "Chain ID: 0x7a69"), id="chain id hex"),
        pytest.param(lambda t, a: t.replace("Z\nExpiration", "+00:00\nExpiration"), id="offset instead of Z"),
    ],
)
def test_malformed_messages_are_refused_even_when_validly_signed(account: LocalAccount, corrupt: object) -> None:
    text = corrupt(login_message(account).to_text(), account.address)  # type: ignore[operator]

    error = refused(text, sign(account, text))

    assert error.code == "malformed"
    assert str(error)  # a human-readable reason


def test_verify_wants_an_aware_now(account: LocalAccount) -> None:
    text = login_message(account).to_text()

    with pytest.raises(ValueError, match="timezone-aware"):
        check(text, sign(account, text), now=NOW.replace(tzinfo=None))


def test_verify_defaults_now_to_the_clock(account: LocalAccount) -> None:
    real_now = datetime.now(UTC).replace(microsecond=0)
    message = login_message(account, issued_at=real_now, expiration_time=real_now + timedelta(minutes=5))
    text = message.to_text()

    assert verify(text, sign(account, text), domain=DOMAIN, chain_id=CHAIN_ID) == message


# --------------------------------------------------------------------------------------------------------------
# Strict parsing and construction


def _with_line(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "text, reason",
    [
        (EXAMPLE.replace("Nonce: 32891756", "Nonce: 3289175"), "line 9: nonce"),
        (EXAMPLE.replace("Nonce: 32891756", "Nonce: 3289175!"), "line 9: nonce"),
        (EXAMPLE.replace(EXAMPLE_ADDRESS, EXAMPLE_ADDRESS.lower()), "line 2: address is not EIP-55"),
        (EXAMPLE.replace(EXAMPLE_ADDRESS, EXAMPLE_ADDRESS[:-1]), "line 2: address is not 0x"),
        (EXAMPLE.replace("\n", "\r\n"), "carriage return"),
        (EXAMPLE + "\n", "trailing newline"),
        (EXAMPLE.replace("I accept the", "I accept\nthe"), "line 5: expected an empty line after the statement"),
        (EXAMPLE.replace("Resources:", "Session: 1\nResources:"), "line 11: unknown or unexpected line"),
        (EXAMPLE.replace("Version: 1", "Version: 2"), "line 7: Version must be '1'"),
        (EXAMPLE.replace("Version: 1\n", ""), "line 7: expected the 'Version: ...' line"),
        (EXAMPLE.replace("Chain ID: 1\n", "Chain ID: 1\nChain ID: 1\n"), "line 9: expected the 'Nonce: ...' line"),
        (EXAMPLE.replace("Chain ID: 1", "Chain ID: 01"), "line 8: Chain ID"),
        (EXAMPLE.replace("Chain ID: 1", "Chain ID: -1"), "line 8: Chain ID"),
        (EXAMPLE.replace("Chain ID: 1", "Chain ID: \u0661"), "line 8: Chain ID"),  # Arabic-Indic digit one
        (EXAMPLE.replace("Chain ID: 1", "Chain ID: 1" + "0" * 5000), "line 8: Chain ID has too many digits"),
        (EXAMPLE.replace("URI: https://service.org/login", "URI: not a uri"), "line 6: URI is not an RFC 3986"),
        (EXAMPLE.replace("URI: https://service.org/login", "URI:https://service.org/login"), "line 6: expected"),
        (EXAMPLE.replace("- https://example.com/my-web2-claim.json", "- see tos"), "line 13: resource is not"),
        (EXAMPLE.replace("- https://example.com/my-web2-claim.json", "-https://x.org"), "line 13: resource line"),
        (EXAMPLE.split("\n- ipfs")[0], "line 11: 'Resources:' must be followed"),
        (EXAMPLE.replace("Resources:", "Resources: 2"), "line 11: 'Resources:' must be alone"),
        (EXAMPLE.replace("Resources:\n", ""), "line 11: resource line without"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24.000Z"), "canonical"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24.10Z"), "canonical"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24+00:00"), "canonical"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30t16:25:24z"), "canonical"),
        (
            _with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24.1234567Z"),
            "canonical",
        ),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30 16:25:24Z"), "not an RFC 3339"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24"), "not an RFC 3339"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-02-30T16:25:24Z"), "not a valid date"),
        (_with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2016-12-31T23:59:60Z"), "not a valid date"),
        (
            _with_line(
                EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24Z\nExpiration Time: x"
            ),
            "line 11: Expiration Time is not an RFC 3339",
        ),
        (
            _with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Not Before: 2021-09-30T16:25:24Z"),
            "line 10: expected the 'Issued At: ...' line",
        ),
        (
            _with_line(
                EXAMPLE,
                "Issued At: 2021-09-30T16:25:24Z",
                "Issued At: 2021-09-30T16:25:24Z\nNot Before: 2021-09-30T16:25:24Z\n"
                "Expiration Time: 2021-09-30T16:35:24Z",
            ),
            "line 12: field 'Expiration Time' is out of order",
        ),
        (
            _with_line(EXAMPLE, "Issued At: 2021-09-30T16:25:24Z", "Issued At: 2021-09-30T16:25:24Z\nRequest ID: a b"),
            "line 11: request ID",
        ),
        (EXAMPLE.replace(EXAMPLE_STATEMENT, ""), "line 5: expected the 'URI: ...' line, got an empty line"),
        (EXAMPLE.replace(EXAMPLE_STATEMENT, 'Say "hi"'), "line 4: statement may only contain"),
        (EXAMPLE.replace(EXAMPLE_STATEMENT, "Ünïcode"), "line 4: statement may only contain"),
        (EXAMPLE.replace(EXAMPLE_STATEMENT, "tab\there"), "line 4: statement may only contain"),
        (EXAMPLE.replace(EXAMPLE_STATEMENT + "\n\n", ""), "line 5: expected an empty line after the statement (or is"),
        (EXAMPLE.replace("service.org wants", "Service.org  wants"), "line 1: domain"),
        (EXAMPLE.replace("service.org wants", "user@service.org wants"), "line 1: domain"),
        (EXAMPLE.replace("service.org wants", "service.org: wants"), "line 1: domain"),
        (EXAMPLE.replace("service.org wants", " wants"), "line 1: domain"),
        (EXAMPLE.replace("service.org wants", "[::g] wants"), "line 1: domain"),
        (EXAMPLE.replace("service.org wants", "service.org/path wants"), "line 1: domain"),
        (EXAMPLE.replace("service.org wants", "1https://service.org wants"), "line 1: scheme"),
        (EXAMPLE.replace("service.org wants", "://service.org wants"), "line 1: scheme"),
        (EXAMPLE.replace("wants you to sign in", "wants you to log in"), "line 1: expected '<domain>"),
        ("", "line 1: expected '<domain>"),
        (EXAMPLE.split("\nURI:")[0], "message ends early"),
    ],
)
def test_parse_refuses_with_a_reason(text: str, reason: str) -> None:
    error = parse_error(text)

    assert error.code == "malformed"
    assert reason in str(error)


@pytest.mark.parametrize(
    "changes",
    [
        {"statement": "two\nlines"},
        {"statement": "carriage\rreturn"},
        {"statement": ""},
        {"address": EXAMPLE_ADDRESS.lower()},
        {"address": "0x123"},
        {"nonce": "1234567"},
        {"nonce": "12345678 "},
        {"version": "2"},
        {"version": 1},
        {"chain_id": -1},
        {"chain_id": True},
        {"chain_id": "1"},
        {"issued_at": datetime(2021, 9, 30, 16, 25, 24)},  # naive
        {"expiration_time": "2021-09-30T16:25:24Z"},
        {"not_before": datetime(2021, 9, 30)},  # naive
        {"domain": ""},
        {"domain": "service.org:"},
        {"domain": "evil.org wants you to sign in with your Ethereum account:\n"},
        {"uri": "/relative/path"},
        {"uri": "https://service.org/a b"},
        {"uri": "https://[::1x]/"},
        {"uri": "https://[1:2]/"},
        {"resources": ("https://ok.example/", "nope")},
        {"resources": "https://ok.example/"},
        {"request_id": "a\nb"},
        {"scheme": "ht tp"},
        {"scheme": ""},
    ],
)
def test_construction_refuses_invalid_fields(changes: dict[str, object]) -> None:
    with pytest.raises(SiweError) as caught:
        replace(SiweMessage.parse(EXAMPLE), **changes)  # type: ignore[arg-type]
    assert caught.value.code == "malformed"


def test_empty_statement_is_refused_in_favour_of_none() -> None:
    with pytest.raises(SiweError, match="statement is empty; use None") as caught:
        replace(SiweMessage.parse(EXAMPLE), statement="")
    assert caught.value.code == "malformed"


def test_construction_normalises_times_to_utc_and_resources_to_a_tuple() -> None:
    east = timezone(timedelta(hours=8))
    message = replace(
        SiweMessage.parse(EXAMPLE),
        issued_at=datetime(2021, 10, 1, 0, 25, 24, tzinfo=east),
        resources=["https://a.example/"],  # type: ignore[arg-type]
    )

    assert message.issued_at.tzinfo is UTC
    assert "Issued At: 2021-09-30T16:25:24Z" in message.to_text()
    assert message.resources == ("https://a.example/",)
    assert hash(message) == hash(SiweMessage.parse(message.to_text()))


@pytest.mark.parametrize(
    "domain",
    ["localhost", "localhost:3000", "127.0.0.1:8545", "[::1]", "[2001:db8::7]:443", "xn--fiqs8s.example", "a%2Db"],
)
def test_domain_forms_accepted(domain: str) -> None:
    text = EXAMPLE.replace("service.org wants", f"{domain} wants")

    assert SiweMessage.parse(text).domain == domain
    assert SiweMessage.parse(text).to_text() == text


# --------------------------------------------------------------------------------------------------------------
# Properties

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_SUB_DELIMS = "!$&'()*+,;="
_STATEMENT_CHARS = _UNRESERVED + ":/?#[]@" + _SUB_DELIMS + " "
_pct = st.builds(lambda b: f"%{b:02X}", st.integers(0, 255))
_pchar = st.one_of(st.sampled_from(_UNRESERVED + _SUB_DELIMS + ":@"), _pct)
_segment = st.lists(_pchar, max_size=6).map("".join)
_label = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
_reg_name = st.lists(_label, min_size=1, max_size=3).map(".".join)
_host = st.one_of(_reg_name, st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"))
_port = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))
_domains = st.builds(str.__add__, _host, _port)
_schemes = st.from_regex(r"[A-Za-z][A-Za-z0-9+.\-]{0,8}", fullmatch=True)


def _uri(scheme: str, authority: str, path: str, query: str, fragment: str) -> str:
    if not authority and path.startswith("//"):  # RFC 3986: without an authority the path cannot start "//"
        path = "/" + path.lstrip("/")
    return f"{scheme}:{authority}{path}{query}{fragment}"


_uris = st.builds(
    _uri,
    _schemes,
    st.one_of(st.just(""), _domains.map(lambda d: f"//{d}")),
    st.lists(_segment, max_size=4).map(lambda segments: "".join(f"/{s}" for s in segments)),
    st.one_of(
        st.just(""), st.lists(st.one_of(_pchar, st.sampled_from("/?")), max_size=8).map(lambda q: "?" + "".join(q))
    ),
    st.one_of(st.just(""), st.lists(_pchar, max_size=8).map(lambda f: "#" + "".join(f))),
)
_times = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.one_of(
        st.just(UTC),
        st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))),
    ),
)
_messages = st.builds(
    SiweMessage,
    domain=_domains,
    address=st.binary(min_size=20, max_size=20).map(to_checksum_address),
    uri=_uris,
    version=st.just("1"),
    chain_id=st.integers(0, 2**256),
    nonce=st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=40),
    issued_at=_times,
    statement=st.none() | st.text(alphabet=_STATEMENT_CHARS, min_size=1, max_size=80),
    expiration_time=st.none() | _times,
    not_before=st.none() | _times,
    request_id=st.none() | st.lists(_pchar, max_size=12).map("".join),
    resources=st.lists(_uris, max_size=4).map(tuple),
    scheme=st.none() | _schemes,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages)
def test_property_parse_inverts_to_text(message: SiweMessage) -> None:
    text = message.to_text()

    assert SiweMessage.parse(text) == message
    assert SiweMessage.parse(text).to_text() == text
    assert "\r" not in text and not text.endswith("\n")


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(0, len(EXAMPLE)),
    edit=st.sampled_from(["insert", "replace", "delete"]),
    char=st.sampled_from(list("\n\r :-0aZ.TЁ\t")),
)
def test_property_parse_accepts_only_round_tripping_texts(position: int, edit: str, char: str) -> None:
    if edit == "insert":
        text = EXAMPLE[:position] + char + EXAMPLE[position:]
    elif edit == "replace":
        text = EXAMPLE[:position] + char + EXAMPLE[position + 1 :]
    else:
        text = EXAMPLE[:position] + EXAMPLE[position + 1 :]

    try:
        message = SiweMessage.parse(text)
    except SiweError as error:
        assert error.code == "malformed"
    else:
        assert message.to_text() == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_property_parse_of_arbitrary_text_only_raises_siwe_error(text: str) -> None:
    try:
        message = SiweMessage.parse(text)
    except SiweError as error:
        assert error.code == "malformed"
    else:
        assert message.to_text() == text


@settings(max_examples=200, deadline=None)
@given(signature=st.one_of(st.binary(max_size=80), st.text(max_size=140), st.text("0123456789abcdefx", max_size=140)))
def test_property_arbitrary_signatures_are_signature_invalid(signature: str | bytes) -> None:
    account = Account.from_key("0x" + "42" * 32)
    text = login_message(account).to_text()

    with pytest.raises(SiweError) as caught:
        check(text, signature)
    assert caught.value.code == "signature_invalid"
