"""SIWE refusals word for word, and the signature and address edge cases `make mutation` found untested.

The ``detail`` of a 401 from ``/v1/auth/token`` is the ``SiweError`` message, so its wording is part of
the interface a wallet developer reads; each refusal below pins (code, message)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from api import siwe
from api.siwe import SiweError, SiweMessage, challenge, new_nonce, verify
from tests.api.test_siwe import CHAIN_ID, DOMAIN, NONCE, NOW, check, login_message, sign

N = siwe._SECP256K1_N


@pytest.fixture(scope="module")
def account() -> LocalAccount:
    return Account.create()


def refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(SiweError) as caught:
        call(*args, **kwargs)
    assert type(caught.value) is SiweError
    return caught.value.code, str(caught.value)


# ---- verify: every refusal, code and words ---------------------------------------------------------


def test_verify_refusals_word_for_word(account: LocalAccount) -> None:
    def refused(message: SiweMessage, **overrides: Any) -> tuple[str, str]:
        text = message.to_text()
        return refusal(check, text, sign(account, text), **overrides)

    good = login_message(account)
    assert refused(good, domain="other.example.org") == (
        "wrong_domain",
        "message is for domain 'qcl.example.org', expected 'other.example.org'",
    )
    assert refused(good, chain_id=1) == ("wrong_chain", f"message is for chain {CHAIN_ID}, expected 1")
    assert refused(good, nonce="zzzzzzzzzzzz") == ("wrong_nonce", "message nonce is not the one issued")
    assert refused(replace(good, expiration_time=None)) == (
        "lifetime_too_long",
        "message has no expiration time (unbounded lifetime)",
    )
    assert refused(replace(good, expiration_time=good.issued_at + timedelta(minutes=10, seconds=1))) == (
        "lifetime_too_long",
        "message lifetime 0:10:01 exceeds the maximum 0:10:00",
    )
    assert refused(good, now=NOW - timedelta(minutes=2, seconds=1)) == (
        "not_yet_valid",
        "message is issued in the future (2026-11-26T22:49:00Z)",
    )
    assert refused(replace(good, not_before=NOW + timedelta(seconds=1))) == (
        "not_yet_valid",
        "message is not valid before 2026-11-26T22:50:01Z",
    )
    assert refused(replace(good, expiration_time=good.issued_at)) == (
        "expired",
        "message expires no later than it is issued",
    )
    assert refused(good, now=NOW + timedelta(minutes=5)) == ("expired", "message expired at 2026-11-26T22:55:00Z")
    text = good.to_text()
    other = Account.create()
    assert refusal(check, text, sign(other, text)) == (
        "signature_invalid",
        f"signature is by {other.address}, not by {account.address}",
    )


def test_an_expiry_equal_to_the_issue_time_is_refused_as_such_even_at_that_instant(account: LocalAccount) -> None:
    message = login_message(account, expiration_time=NOW - timedelta(minutes=1))
    text = message.to_text()
    assert refusal(check, text, sign(account, text), now=NOW - timedelta(minutes=1)) == (
        "expired",
        "message expires no later than it is issued",
    )


# ---- signatures --------------------------------------------------------------------------------------


def _raw(r: int, s: int, v: int = 27) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def test_signature_shape_refusals_word_for_word(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    assert refusal(check, text, "0x1234") == (
        "signature_invalid",
        "signature must be 0x followed by 130 hex digits (65 bytes: r || s || v)",
    )
    assert refusal(check, text, 1234) == ("signature_invalid", "signature must be a hex string or bytes, not int")
    assert refusal(check, text, b"\x01" * 64) == (
        "signature_invalid",
        "signature must be 65 bytes (r || s || v), got 64",
    )
    assert refusal(check, text, _raw(1, 1, 29)) == (
        "signature_invalid",
        "signature recovery byte v must be 27 or 28 (or 0 or 1), got 29",
    )


OUT_OF_RANGE = ("signature_invalid", "signature r or s is out of range")


@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 0), (N, 1), (1, N), (N + 1, 1), (1, 2**256 - 1)])
def test_r_and_s_must_each_be_in_one_to_n_minus_one(account: LocalAccount, r: int, s: int) -> None:
    text = login_message(account).to_text()
    assert refusal(check, text, _raw(r, s)) == OUT_OF_RANGE
    assert refusal(check, text, "0x" + _raw(r, s).hex()) == OUT_OF_RANGE


@pytest.mark.parametrize(("r", "s"), [(1, 1), (N - 1, 1), (1, N - 1), (N - 1, N - 1)])
def test_r_and_s_at_the_ends_of_the_range_get_past_the_range_check(account: LocalAccount, r: int, s: int) -> None:
    text = login_message(account).to_text()
    code, message = refusal(check, text, _raw(r, s))
    assert code == "signature_invalid" and message != OUT_OF_RANGE[1]


def _unrecoverable_r() -> int:
    """An r that is no point's x coordinate: recovery fails however s and v are chosen."""
    for r in range(1, 100):
        try:
            Account.recover_message(encode_defunct(text="x"), signature=_raw(r, 1))
        except Exception:  # noqa: BLE001 - whatever eth-account raises for it
            return r
    raise AssertionError("no unrecoverable r below 100")


def test_a_signature_that_recovers_no_key_is_signature_invalid(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    code, message = refusal(check, text, _raw(_unrecoverable_r(), 1))
    assert code == "signature_invalid"
    assert message.startswith("signature does not recover to a public key: ")
    assert len(message) > len("signature does not recover to a public key: ")


def test_recovery_bytes_zero_and_one_both_stand_for_27_and_28(account: LocalAccount) -> None:
    seen = set()
    for index in range(40):
        message = login_message(account, nonce=f"{NONCE}{index}")
        raw = bytes.fromhex(sign(account, message.to_text())[2:])
        seen.add(raw[64])
        normalised = raw[:64] + bytes([raw[64] - 27])
        assert check(message.to_text(), normalised, nonce=message.nonce).address == account.address
        if seen == {27, 28}:
            return
    raise AssertionError(f"40 signatures and only recovery bytes {seen}")


# ---- challenge ------------------------------------------------------------------------------------


def _challenge(address: str, **changes: Any) -> SiweMessage:
    kwargs: dict[str, Any] = {
        "domain": DOMAIN,
        "address": address,
        "uri": f"https://{DOMAIN}/login",
        "chain_id": CHAIN_ID,
        "nonce": NONCE,
        "lifetime": timedelta(minutes=10),
        "statement": None,
        "now": NOW,
    }
    kwargs.update(changes)
    return challenge(**kwargs)


def test_challenge_checksums_all_lower_and_all_upper_case_addresses(account: LocalAccount) -> None:
    digits = account.address[2:]
    assert _challenge("0x" + digits.lower()).address == account.address
    assert _challenge("0x" + digits.upper()).address == account.address


def test_challenge_refuses_a_mixed_case_address_with_a_wrong_checksum() -> None:
    # first digit upper-case, the rest lower-case: mixed case, and not this address's EIP-55 form
    address = "0xAb5801a7d398351b8be11c439e05c5b3259aec9b"
    code, message = refusal(_challenge, address)
    assert code == "malformed"
    assert message == (
        "address is not EIP-55 checksummed (expected 0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B): "
        "0xAb5801a7d398351b8be11c439e05c5b3259aec9b"
    )


def test_challenge_refuses_a_short_address_as_malformed() -> None:
    assert refusal(_challenge, "0x1234") == ("malformed", "address is not 0x followed by 40 hex digits: '0x1234'")


def test_challenge_lifetime_refusal_word_for_word(account: LocalAccount) -> None:
    assert refusal(_challenge, account.address, lifetime=timedelta(milliseconds=500)) == (
        "malformed",
        "lifetime must be at least one second, got 0:00:00.500000",
    )


def test_challenge_with_another_offset_is_the_same_instant_in_utc(account: LocalAccount) -> None:
    east8 = NOW.astimezone(timezone(timedelta(hours=8)))
    message = _challenge(account.address, now=east8)
    assert message.issued_at == NOW and message.issued_at.utcoffset() == timedelta(0)
    assert "Issued At: 2026-11-26T22:50:00Z" in message.to_text()


def test_new_nonce_is_exactly_22_alphanumerics() -> None:
    for _ in range(20):
        nonce = new_nonce()
        assert len(nonce) == 22 and nonce.isascii() and nonce.isalnum()


# ---- construction refusals, word for word -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scheme": "1http"}, "scheme is not an RFC 3986 scheme: '1http'"),
        ({"uri": "not a uri"}, "uri is not an RFC 3986 URI: 'not a uri'"),
        ({"uri": 7}, "uri must be a string, not int"),
        ({"version": "2"}, "version must be '1', not '2'"),
        ({"chain_id": -1}, "chain_id must be a non-negative integer, not -1"),
        ({"issued_at": "2026-11-26"}, "issued_at must be a datetime, not str"),
        (
            {"issued_at": datetime(2026, 11, 26)},
            "issued_at must be timezone-aware: datetime.datetime(2026, 11, 26, 0, 0)",
        ),
        (
            {"issued_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
            "issued_at is out of range in UTC: datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(seconds=3600)))",
        ),
        ({"expiration_time": "soon"}, "expiration_time must be a datetime, not str"),
        ({"not_before": 5}, "not_before must be a datetime, not int"),
        ({"request_id": "a b"}, "request ID may only contain RFC 3986 pchar characters, got 'a b'"),
        ({"request_id": 5}, "request ID may only contain RFC 3986 pchar characters, got 5"),
        ({"nonce": "short"}, "nonce must be at least 8 ASCII letters or digits, got 'short'"),
        ({"resources": ("https://a.example/x", "no uri")}, "resources[1] is not an RFC 3986 URI: 'no uri'"),
    ],
)
def test_construction_refusals_word_for_word(account: LocalAccount, changes: dict[str, Any], message: str) -> None:
    assert refusal(login_message, account, **changes) == ("malformed", message)


def test_long_values_are_cut_at_80_characters_in_messages(account: LocalAccount) -> None:
    exactly = "a" * 80
    longer = "b" * 81
    assert refusal(login_message, account, request_id=exactly + " ")[1] == (
        f"request ID may only contain RFC 3986 pchar characters, got '{'a' * 80}...'"
    )
    assert (
        refusal(login_message, account, uri=exactly[:-1] + " ")[1] == f"uri is not an RFC 3986 URI: '{exactly[:-1]} '"
    )
    assert refusal(login_message, account, uri=longer)[1] == f"uri is not an RFC 3986 URI: '{'b' * 80}...'"


# ---- parser messages for stray lines ----------------------------------------------------------------


def test_stray_empty_lines_are_named(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    assert refusal(SiweMessage.parse, text + "\n") == (
        "malformed",
        f"line {len(text.splitlines()) + 1}: unexpected trailing newline at the end of the message",
    )
    lines = text.split("\n")
    doubled = "\n".join([*lines[:-1], "", lines[-1]])
    code, message = refusal(SiweMessage.parse, doubled)
    assert code == "malformed" and message.endswith(": unexpected empty line")


def test_verify_uses_utc_for_an_aware_now_in_another_zone(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    east8 = (NOW + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=8)))
    assert refusal(check, text, sign(account, text), now=east8) == (
        "expired",
        "message expired at 2026-11-26T22:55:00Z",
    )
    assert verify(text, sign(account, text), domain=DOMAIN, chain_id=CHAIN_ID, now=NOW.astimezone(UTC)).address


def test_show_cuts_after_the_limit_only() -> None:
    assert siwe._show("a" * 80) == repr("a" * 80)
    assert siwe._show("a" * 81) == repr("a" * 80 + "...")
    assert siwe._show("abc", limit=2) == repr("ab...")


def test_a_naive_now_is_refused_with_its_name(account: LocalAccount) -> None:
    text = login_message(account).to_text()
    with pytest.raises(
        ValueError, match=r"^now must be timezone-aware, got datetime\.datetime\(2026, 11, 26, 22, 50\)$"
    ):
        verify(text, sign(account, text), domain=DOMAIN, chain_id=CHAIN_ID, now=NOW.replace(tzinfo=None))


def test_a_wrong_line_where_a_field_belongs_is_quoted(account: LocalAccount) -> None:
    text = login_message(account).to_text().replace("Version: 1", "Versio: 1")
    assert refusal(SiweMessage.parse, text) == (
        "malformed",
        "line 7: expected the 'Version: ...' line, got 'Versio: 1'",
    )


def test_a_message_cut_short_says_what_was_expected(account: LocalAccount) -> None:
    lines = login_message(account).to_text().split("\n")
    assert refusal(SiweMessage.parse, "\n".join(lines[:2])) == (
        "malformed",
        "message ends early: expected an empty line after the address after line 2",
    )
    assert refusal(SiweMessage.parse, "\n".join(lines[:6])) == (
        "malformed",
        "message ends early: expected the 'Version' line after line 6",
    )


def test_siwe_error_repr_names_code_and_message() -> None:
    assert repr(SiweError("expired", "too late")) == "SiweError(code='expired', message='too late')"
