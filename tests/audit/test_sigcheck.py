"""audit._sigcheck on its own: every problem code at its bound, the key cache, the other recovery id,
the DER form the verification reads, and what ``signer_of`` refuses."""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator

import pytest
from coincurve import PrivateKey

from audit import _sigcheck
from audit._sigcheck import HALF_ORDER, INVALID, MALFORMED, MALLEABLE, MISSING, check_chunk, keccak256

ORDER = int(HALF_ORDER.hex(), 16) * 2 + 1
SEPARATOR = keccak256(b"a domain")


def address(key: PrivateKey) -> str:
    return "0x" + keccak256(key.public_key.format(compressed=False)[1:])[-20:].hex()


def sign(key: PrivateKey, encoded: bytes, separator: bytes = SEPARATOR) -> bytes:
    """r || s || v (v 27 or 28) over the EIP-712 digest, low s (libsecp256k1 signs so)."""
    compact = key.sign_recoverable(keccak256(b"\x19\x01" + separator + keccak256(encoded)), hasher=None)
    return compact[:64] + bytes([compact[64] + 27])


def high_s(signature: bytes) -> bytes:
    """The same (r, s) point with s in the upper half (and the other recovery id)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (ORDER - s).to_bytes(32, "big") + bytes([55 - signature[64]])


@pytest.fixture
def keys() -> Iterator[dict[str, object]]:
    """An empty key cache for the test (the module keeps keys per process)."""
    saved = dict(_sigcheck._KEYS)
    _sigcheck._KEYS.clear()
    yield _sigcheck._KEYS  # type: ignore[misc]
    _sigcheck._KEYS.clear()
    _sigcheck._KEYS.update(saved)


ALICE = PrivateKey(b"\x11" * 32)
BOB = PrivateKey(b"\x22" * 32)


def test_keccak256() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_a_valid_signature_is_no_problem_and_its_key_is_kept(keys: dict[str, object]) -> None:
    jobs: list[_sigcheck.Job] = [
        (b"one", sign(ALICE, b"one"), address(ALICE)),
        (b"two", sign(BOB, b"two"), address(BOB)),
    ]
    assert check_chunk(SEPARATOR, jobs) == []
    assert set(keys) == {address(ALICE), address(BOB)}
    assert check_chunk(SEPARATOR, jobs) == []  # verified against the kept keys


def test_each_problem_at_its_position(keys: dict[str, object]) -> None:
    good = sign(ALICE, b"x")
    alice = address(ALICE)
    jobs: list[_sigcheck.Job] = [
        (b"x", good, alice),
        (b"x", None, alice),
        (b"x", good[:64], alice),
        (b"x", good + b"\x00", alice),
        (b"x", good[:64] + b"\x1a", alice),  # v = 26
        (b"x", good[:64] + b"\x1d", alice),  # v = 29
        (b"x", high_s(good), alice),
        (b"y", good, alice),  # signed another request
        (b"x", sign(BOB, b"x"), alice),  # signed by another key
    ]
    assert check_chunk(SEPARATOR, jobs) == [
        (1, MISSING, "no signed request for this release in its transaction"),
        (2, MALFORMED, "a 64-byte signature is not r || s || v"),
        (3, MALFORMED, "a 66-byte signature is not r || s || v"),
        (4, MALFORMED, "a 65-byte signature is not r || s || v"),
        (5, MALFORMED, "a 65-byte signature is not r || s || v"),
        (6, MALLEABLE, "s is in the upper half of the curve order"),
        (7, INVALID, check_chunk(SEPARATOR, [(b"y", good, alice)])[0][2]),
        (8, INVALID, f"signed by {address(BOB)}, not by {alice}"),
    ]
    assert check_chunk(SEPARATOR, [(b"y", good, alice)])[0][2].startswith("signed by 0x")
    assert check_chunk(keccak256(b"another domain"), jobs[:1]) != []  # the domain is signed too


@pytest.mark.parametrize("known", [False, True])
def test_s_at_half_the_order_is_not_malleable(keys: dict[str, object], known: bool) -> None:
    """The bound is s > n/2: a signature whose s is exactly n/2 is checked, not refused as malleable."""
    signature = b"\x01" * 32 + HALF_ORDER + b"\x1b"
    if known:
        keys[address(ALICE)] = ALICE.public_key
    ((position, code, _),) = check_chunk(SEPARATOR, [(b"x", signature, address(ALICE))])
    assert (position, code) == (0, INVALID)
    over = b"\x01" * 32 + (int(HALF_ORDER.hex(), 16) + 1).to_bytes(32, "big") + b"\x1b"
    assert check_chunk(SEPARATOR, [(b"x", over, address(ALICE))])[0][1] == MALLEABLE


def test_the_other_recovery_id_is_not_held_against_the_signer(keys: dict[str, object]) -> None:
    good = sign(ALICE, b"x")
    flipped = good[:64] + bytes([55 - good[64]])
    assert check_chunk(SEPARATOR, [(b"x", flipped, address(ALICE))]) == []  # key not known yet
    assert address(ALICE) in keys
    assert keys[address(ALICE)].format() == ALICE.public_key.format()  # type: ignore[attr-defined]
    assert check_chunk(SEPARATOR, [(b"x", flipped, address(ALICE))]) == []  # key known


def test_a_signature_of_no_key(keys: dict[str, object]) -> None:
    """r = 0 (or r, s >= n) is no point: no key recovers, and verification refuses it."""
    alice = address(ALICE)
    for signature in (
        bytes(32) + b"\x01" * 32 + b"\x1b",
        ORDER.to_bytes(32, "big") + b"\x01" * 32 + b"\x1c",
        b"\x01" * 32 + bytes(32) + b"\x1b",
    ):
        assert check_chunk(SEPARATOR, [(b"x", signature, alice)]) == [
            (0, INVALID, f"signed by no valid key, not by {alice}")
        ]
        keys[alice] = ALICE.public_key
        assert check_chunk(SEPARATOR, [(b"x", signature, alice)])[0][1] == INVALID
        keys.clear()


def test_a_kept_key_does_not_pass_another_signers_signature(keys: dict[str, object]) -> None:
    keys[address(BOB)] = ALICE.public_key  # a wrong key kept for BOB (cannot happen; the check still holds)
    signature = sign(ALICE, b"x")
    assert check_chunk(SEPARATOR, [(b"x", signature, address(BOB))]) == []  # what the kept key verifies
    keys.clear()
    assert check_chunk(SEPARATOR, [(b"x", signature, address(BOB))])[0][1] == INVALID


def test_der_matches_libsecp256k1() -> None:
    """The DER form of r || s is what coincurve's own DER signing gives, over many r and s (leading
    zero bytes and set top bits included)."""
    rng = random.Random(5)
    tops = set()
    for _ in range(300):
        key = PrivateKey(rng.getrandbits(256).to_bytes(32, "big"))
        digest = rng.getrandbits(256).to_bytes(32, "big")
        compact = key.sign_recoverable(digest, hasher=None)
        assert _sigcheck._der(compact[:64]) == key.sign(digest, hasher=None)
        tops.add(compact[0] >= 0x80)
    assert tops == {True, False}


def test_der_integer_edges() -> None:
    assert _sigcheck._der_integer(bytes(32)) == b"\x02\x01\x00"
    assert _sigcheck._der_integer(bytes(31) + b"\x7f") == b"\x02\x01\x7f"
    assert _sigcheck._der_integer(bytes(31) + b"\x80") == b"\x02\x02\x00\x80"
    assert _sigcheck._der_integer(b"\x00\x01" + bytes(30)) == b"\x02\x1f\x01" + bytes(30)
    assert _sigcheck._der_integer(b"\xff" * 32) == b"\x02\x21\x00" + b"\xff" * 32
    body = b"\x02\x01\x01\x02\x01\x02"
    assert _sigcheck._der(bytes(31) + b"\x01" + bytes(31) + b"\x02") == b"\x30\x06" + body


def test_signer_of() -> None:
    good = sign(ALICE, b"x")
    assert _sigcheck.signer_of(SEPARATOR, b"x", good) == address(ALICE)
    assert _sigcheck.signer_of(SEPARATOR, b"y", good) not in (None, address(ALICE))
    assert _sigcheck.signer_of(SEPARATOR, b"x", good[:64]) is None
    assert _sigcheck.signer_of(SEPARATOR, b"x", good + b"\x00") is None
    assert _sigcheck.signer_of(SEPARATOR, b"x", good[:64] + b"\x1d") is None
    assert _sigcheck.signer_of(SEPARATOR, b"x", good[:64] + b"\x1a") is None
    assert _sigcheck.signer_of(SEPARATOR, b"x", high_s(good)) is None
    assert _sigcheck.signer_of(SEPARATOR, b"x", bytes(32) + b"\x01" * 32 + b"\x1b") is None
    at_half = b"\x01" * 32 + HALF_ORDER + b"\x1b"  # not refused for its s: some key recovers
    assert _sigcheck.signer_of(SEPARATOR, b"x", at_half) is not None


def test_workers_ignore_interrupts() -> None:
    before = signal.getsignal(signal.SIGINT)
    try:
        _sigcheck.ignore_interrupts()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_r_out_of_range_is_invalid_even_for_a_kept_key(keys: dict[str, object]) -> None:
    """r at or above the curve order is no signature (libsecp256k1 refuses to parse it): with the
    signer's key kept, the fast check must count it as not verified, never as verified."""
    good = sign(ALICE, b"x")
    assert check_chunk(SEPARATOR, [(b"x", good, address(ALICE))]) == []  # ALICE's key is now kept
    assert address(ALICE) in keys
    bad_r = (2**256 - 1).to_bytes(32, "big") + good[32:]
    ((position, code, _),) = check_chunk(SEPARATOR, [(b"x", bad_r, address(ALICE))])
    assert (position, code) == (0, INVALID)
