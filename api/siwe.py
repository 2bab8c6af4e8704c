"""Sign-In with Ethereum (EIP-4361): build, parse strictly, verify.

A small, strict implementation. The guiding rule is that a message is accepted only in its one canonical
text form: ``SiweMessage.parse(text).to_text() == text`` holds for every text ``parse`` accepts, and every
``SiweMessage`` that can be constructed renders to a text ``parse`` accepts. Anything else raises
``SiweError`` (a ``ValueError``) with ``code == "malformed"`` and a message naming the offending line.

Choices where EIP-4361 leaves room (each keeps the text <-> object mapping one-to-one):

* Without a statement the address is followed by three line feeds (``address LF LF LF "URI: "``), exactly as
  the ABNF ``address LF LF [ statement LF ] LF`` reads. An empty statement (four line feeds) is rejected: it
  is ABNF-valid but indistinguishable in intent from "no statement", and common implementations conflate them.
* The statement is held to the ABNF character set (RFC 3986 reserved / unreserved / space), so it is ASCII
  and has no line feed, carriage return, ``%``, ``"`` and the like.
* The domain is ``host [ ":" port ]``: no userinfo (``user@host`` reads as a phishing vector), a non-empty
  host (reg-name or bracketed IPv6 literal) and a non-empty port.
* Times are RFC 3339 date-times, accepted only in the canonical UTC form this module renders:
  ``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` with an upper-case ``T`` and ``Z``, at most six fraction digits and no
  trailing zero in the fraction. Other valid RFC 3339 spellings (offsets, ``.000``) would not round-trip.
* ``Chain ID`` has no leading zeros (``01`` would render back as ``1``).
* A ``Resources:`` line with no resource after it is rejected: ``resources`` is a tuple and ``()`` means the
  line is absent.
* The address must be EIP-55 checksummed (the EIP says SHOULD; we say MUST).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeVar

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.exceptions import ValidationError as EthUtilsValidationError

__all__ = [
    "CLOCK_SKEW",
    "SiweError",
    "SiweErrorCode",
    "SiweMessage",
    "challenge",
    "new_nonce",
    "verify",
]

SiweErrorCode = Literal[
    "malformed",
    "wrong_domain",
    "wrong_chain",
    "wrong_nonce",
    "expired",
    "not_yet_valid",
    "lifetime_too_long",
    "signature_invalid",
]

_T = TypeVar("_T")

#: How far in the future ``issued_at`` may be, to tolerate client clocks running ahead.
CLOCK_SKEW: Final = timedelta(seconds=60)


class SiweError(ValueError):
    """A SIWE message or signature was refused; ``code`` is stable, the message is for humans."""

    def __init__(self, code: SiweErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: SiweErrorCode = code

    def __repr__(self) -> str:
        return f"SiweError(code={self.code!r}, message={str(self)!r})"


# --------------------------------------------------------------------------------------------------------------
# Grammar (RFC 3986 / RFC 3339 / EIP-4361), ASCII only.

_HEADER_SUFFIX: Final = " wants you to sign in with your Ethereum account:"
_VERSION: Final = "1"

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*"
_IP_LITERAL = rf"\[(?:(?P<ipv6>[0-9A-Fa-f:.]+)|v[0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+)\]"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_AUTHORITY = rf"(?:{_USERINFO}@)?(?:{_IP_LITERAL}|{_REG_NAME})(?::[0-9]*)?"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_HIER_PART = (
    rf"(?://{_AUTHORITY}(?:/{_SEGMENT})*"  # "//" authority path-abempty
    rf"|/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"  # path-absolute
    rf"|{_SEGMENT_NZ}(?:/{_SEGMENT})*"  # path-rootless
    r"|)"  # path-empty
)
_QUERY = rf"(?:{_PCHAR}|[/?])*"

_URI_RE: Final = re.compile(rf"{_SCHEME}:{_HIER_PART}(?:\?{_QUERY})?(?:#{_QUERY})?")
_SCHEME_RE: Final = re.compile(_SCHEME)
# Domain: host [":" port], no userinfo, non-empty host, non-empty port.
_DOMAIN_RE: Final = re.compile(
    rf"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})+)(?::[0-9]+)?"
)
_ADDRESS_RE: Final = re.compile(r"0x[0-9A-Fa-f]{40}")
_STATEMENT_RE: Final = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+")
_CHAIN_ID_RE: Final = re.compile(r"0|[1-9][0-9]*")
_NONCE_RE: Final = re.compile(r"[A-Za-z0-9]{8,}")
_REQUEST_ID_RE: Final = re.compile(rf"{_PCHAR}*")
# Any RFC 3339 date-time (T/Z are case-insensitive there) ...
_RFC3339_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# ... but only the canonical UTC spelling round-trips.
_CANONICAL_TIME_RE: Final = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<f>[0-9]{0,5}[1-9]))?Z"
)

_NONCE_ALPHABET: Final = string.ascii_letters + string.digits
_NONCE_LENGTH: Final = 22  # 22 * log2(62) ~ 131 bits


def _show(value: str, limit: int = 80) -> str:
    """A value quoted for an error message, cut short if long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _malformed(message: str) -> SiweError:
    return SiweError("malformed", message)


def _ip_literal_ok(ipv6: str | None) -> bool:
    if ipv6 is None:
        return True
    try:
        ipaddress.IPv6Address(ipv6)
    except ValueError:
        return False
    return True


def _check_uri(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _malformed(f"{what} must be a string, not {type(value).__name__}")
    match = _URI_RE.fullmatch(value)
    if match is None or not _ip_literal_ok(match.group("ipv6")):
        raise _malformed(f"{what} is not an RFC 3986 URI: {_show(value)}")
    return value


def _check_domain(value: object) -> str:
    if not isinstance(value, str):
        raise _malformed(f"domain must be a string, not {type(value).__name__}")
    match = _DOMAIN_RE.fullmatch(value)
    if match is None or not _ip_literal_ok(match.group("ipv6")):
        raise _malformed(f"domain is not an RFC 3986 authority of the form host[:port]: {_show(value)}")
    return value


def _check_address(value: object) -> str:
    if not isinstance(value, str):
        raise _malformed(f"address must be a string, not {type(value).__name__}")
    if _ADDRESS_RE.fullmatch(value) is None:
        raise _malformed(f"address is not 0x followed by 40 hex digits: {_show(value)}")
    if not is_checksum_address(value):
        raise _malformed(f"address is not EIP-55 checksummed (expected {to_checksum_address(value)}): {value}")
    return value


def _check_statement(value: object) -> str:
    if not isinstance(value, str):
        raise _malformed(f"statement must be a string, not {type(value).__name__}")
    if value == "":
        raise _malformed("statement is empty; use None for no statement")
    if _STATEMENT_RE.fullmatch(value) is None:
        raise _malformed(
            "statement may only contain RFC 3986 reserved/unreserved characters and spaces "
            f"(in particular no line feed or carriage return): {_show(value)}"
        )
    return value


def _check_time(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise _malformed(f"{what} must be a datetime, not {type(value).__name__}")
    offset = value.utcoffset()
    if offset is None:
        raise _malformed(f"{what} must be timezone-aware: {value!r}")
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise _malformed(f"{what} is out of range in UTC: {value!r}") from exc
    return utc


def _format_time(value: datetime) -> str:
    """Canonical RFC 3339 in UTC: seconds precision, fraction only when non-zero and without trailing zeros."""
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _parse_time(value: str, what: str) -> datetime:
    if _RFC3339_RE.fullmatch(value) is None:
        raise _malformed(f"{what} is not an RFC 3339 date-time: {_show(value)}")
    match = _CANONICAL_TIME_RE.fullmatch(value)
    if match is None:
        raise _malformed(
            f"{what} is RFC 3339 but not in the canonical form YYYY-MM-DDTHH:MM:SS[.fraction]Z "
            f"(UTC 'Z', at most 6 fraction digits, no trailing zeros), so it would not round-trip: {_show(value)}"
        )
    fraction = match.group("f") or ""
    try:
        return datetime(
            int(match.group("y")),
            int(match.group("mo")),
            int(match.group("d")),
            int(match.group("h")),
            int(match.group("mi")),
            int(match.group("s")),
            int(fraction.ljust(6, "0")) if fraction else 0,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise _malformed(f"{what} is not a valid date and time ({exc}): {_show(value)}") from exc


# --------------------------------------------------------------------------------------------------------------
# The message.


@dataclass(frozen=True)
class SiweMessage:
    """One EIP-4361 message. Construction validates every field; ``to_text`` gives the exact text to sign."""

    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())
    scheme: str | None = None

    def __post_init__(self) -> None:
        if self.scheme is not None:
            if not isinstance(self.scheme, str) or _SCHEME_RE.fullmatch(self.scheme) is None:
                raise _malformed(f"scheme is not an RFC 3986 scheme: {self.scheme!r}")
        _check_domain(self.domain)
        _check_address(self.address)
        if self.statement is not None:
            _check_statement(self.statement)
        _check_uri(self.uri, "uri")
        if self.version != _VERSION:
            raise _malformed(f"version must be {_VERSION!r}, not {self.version!r}")
        if not isinstance(self.chain_id, int) or isinstance(self.chain_id, bool) or self.chain_id < 0:
            raise _malformed(f"chain_id must be a non-negative integer, not {self.chain_id!r}")
        _check_nonce(self.nonce)
        object.__setattr__(self, "issued_at", _check_time(self.issued_at, "issued_at"))
        if self.expiration_time is not None:
            object.__setattr__(self, "expiration_time", _check_time(self.expiration_time, "expiration_time"))
        if self.not_before is not None:
            object.__setattr__(self, "not_before", _check_time(self.not_before, "not_before"))
        if self.request_id is not None:
            _check_request_id(self.request_id)
        resources = self.resources
        if isinstance(resources, str | bytes) or not isinstance(resources, Iterable):
            raise _malformed(f"resources must be a sequence of URIs, not {type(resources).__name__}")
        resources = tuple(resources)
        for index, resource in enumerate(resources):
            _check_uri(resource, f"resources[{index}]")
        object.__setattr__(self, "resources", resources)

    def to_text(self) -> str:
        """The exact EIP-4361 text (LF line endings, no trailing newline)."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme is not None else self.domain
        lines = [origin + _HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines.append("")
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_format_time(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_format_time(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_format_time(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """Parse ``text`` strictly: it must be exactly the canonical text of the message it describes."""
        return _Parser(text).parse()


_REQUIRED_TAGS: Final = ("URI: ", "Version: ", "Chain ID: ", "Nonce: ", "Issued At: ")
_OPTIONAL_TAGS: Final = ("Expiration Time: ", "Not Before: ", "Request ID: ")
_RESOURCES_TAG: Final = "Resources:"


def _field_name(tag: str) -> str:
    return tag.rstrip(" :")


def _check_version(value: str) -> str:
    if value != _VERSION:
        raise _malformed(f"Version must be {_VERSION!r}, got {_show(value)}")
    return value


def _parse_chain_id(value: str) -> int:
    if _CHAIN_ID_RE.fullmatch(value) is None:
        raise _malformed(f"Chain ID must be a decimal integer without leading zeros, got {_show(value)}")
    try:
        return int(value)
    except ValueError as exc:  # more digits than int() converts
        raise _malformed(f"Chain ID has too many digits ({len(value)})") from exc


def _check_nonce(value: object) -> str:
    if not isinstance(value, str) or _NONCE_RE.fullmatch(value) is None:
        shown = _show(value) if isinstance(value, str) else repr(value)
        raise _malformed(f"nonce must be at least 8 ASCII letters or digits, got {shown}")
    return value


def _check_request_id(value: object) -> str:
    if not isinstance(value, str) or _REQUEST_ID_RE.fullmatch(value) is None:
        shown = _show(value) if isinstance(value, str) else repr(value)
        raise _malformed(f"request ID may only contain RFC 3986 pchar characters, got {shown}")
    return value


class _Parser:
    """Line-by-line recogniser for the EIP-4361 grammar; errors name the 1-based line number."""

    def __init__(self, text: object) -> None:
        if not isinstance(text, str):
            raise _malformed(f"message must be a string, not {type(text).__name__}")
        if "\r" in text:
            raise _malformed("message contains a carriage return; lines must end with LF only (no CRLF)")
        self.text = text
        self.lines = text.split("\n")
        self.pos = 0  # index of the next line to read

    def _error(self, index: int, message: str) -> SiweError:
        return _malformed(f"line {index + 1}: {message}")

    def _at(self, index: int, check: Callable[[str], _T], value: str) -> _T:
        """``check(value)``, with any error prefixed by the line the value came from."""
        try:
            return check(value)
        except SiweError as exc:
            raise self._error(index, str(exc)) from exc

    def _take(self, expected: str) -> tuple[int, str]:
        if self.pos >= len(self.lines):
            raise _malformed(f"message ends early: expected {expected} after line {len(self.lines)}")
        self.pos += 1
        return self.pos - 1, self.lines[self.pos - 1]

    def _blank(self, why: str) -> None:
        index, line = self._take(f"an empty line {why}")
        if line != "":
            raise self._error(index, f"expected an empty line {why}, got {_show(line)}")

    def _required(self, tag: str) -> tuple[int, str]:
        index, line = self._take(f"the {_field_name(tag)!r} line")
        if not line.startswith(tag):
            got = "an empty line" if line == "" else _show(line)
            raise self._error(index, f"expected the '{tag}...' line, got {got}")
        return index, line[len(tag) :]

    def _optional(self, tag: str) -> tuple[int, str] | None:
        if self.pos < len(self.lines) and self.lines[self.pos].startswith(tag):
            self.pos += 1
            return self.pos - 1, self.lines[self.pos - 1][len(tag) :]
        return None

    def _time(self, field: tuple[int, str] | None, tag: str) -> datetime | None:
        if field is None:
            return None
        index, raw = field
        return self._at(index, lambda value: _parse_time(value, _field_name(tag)), raw)

    def parse(self) -> SiweMessage:
        # ${scheme://}?${domain} wants you to sign in with your Ethereum account:
        index, header = self._take("the header line")
        if not header.endswith(_HEADER_SUFFIX):
            raise self._error(index, f"expected '<domain>{_HEADER_SUFFIX}', got {_show(header)}")
        domain = header[: -len(_HEADER_SUFFIX)]
        scheme: str | None = None
        if "://" in domain:
            scheme, domain = domain.split("://", 1)
            if _SCHEME_RE.fullmatch(scheme) is None:
                raise self._error(index, f"scheme is not an RFC 3986 scheme: {_show(scheme)}")
        self._at(index, _check_domain, domain)

        # ${address} LF LF [ ${statement} LF ] LF
        index, address = self._take("the address line")
        self._at(index, _check_address, address)
        self._blank("after the address")
        index, line = self._take("a statement or an empty line")
        statement: str | None = None
        if line != "":
            statement = self._at(index, _check_statement, line)
            if line.startswith(_REQUIRED_TAGS[0]):
                self._blank("after the statement (or is the empty line before 'URI:' missing?)")
            else:
                self._blank("after the statement (a statement is a single line)")

        uri_field, version_field, chain_field, nonce_field, issued_field = (
            self._required(tag) for tag in _REQUIRED_TAGS
        )
        expiration_field, not_before_field, request_field = (self._optional(tag) for tag in _OPTIONAL_TAGS)

        resources: list[str] = []
        resources_field = self._optional(_RESOURCES_TAG)
        if resources_field is not None:
            index, rest = resources_field
            if rest != "":
                raise self._error(index, f"'{_RESOURCES_TAG}' must be alone on its line, got {_show(rest)}")
            while (item := self._optional("- ")) is not None:
                resources.append(self._at(item[0], lambda value: _check_uri(value, "resource"), item[1]))
            if not resources:
                raise self._error(index, f"'{_RESOURCES_TAG}' must be followed by at least one '- <URI>' line")

        if self.pos < len(self.lines):
            raise self._error(self.pos, self._describe_extra(self.lines[self.pos]))

        issued_at = self._time(issued_field, "Issued At: ")
        assert issued_at is not None  # a required field is never None
        request_id = None if request_field is None else self._at(request_field[0], _check_request_id, request_field[1])
        message = SiweMessage(
            domain=domain,
            address=address,
            uri=self._at(uri_field[0], lambda value: _check_uri(value, "URI"), uri_field[1]),
            version=self._at(version_field[0], _check_version, version_field[1]),
            chain_id=self._at(chain_field[0], _parse_chain_id, chain_field[1]),
            nonce=self._at(nonce_field[0], _check_nonce, nonce_field[1]),
            issued_at=issued_at,
            statement=statement,
            expiration_time=self._time(expiration_field, "Expiration Time: "),
            not_before=self._time(not_before_field, "Not Before: "),
            request_id=request_id,
            resources=tuple(resources),
            scheme=scheme,
        )
        if message.to_text() != self.text:  # defence in depth: the grammar above should make this unreachable
            raise _malformed("message is not in canonical form (it does not round-trip)")
        return message

    def _describe_extra(self, line: str) -> str:
        if line == "":
            if self.pos == len(self.lines) - 1:
                return "unexpected trailing newline at the end of the message"
            return "unexpected empty line"
        for tag in (*_REQUIRED_TAGS, *_OPTIONAL_TAGS, _RESOURCES_TAG):
            if line.startswith(_field_name(tag)):
                return f"field {_field_name(tag)!r} is out of order, repeated or misformatted: {_show(line)}"
        if line.startswith("-"):
            return f"resource line without a preceding '{_RESOURCES_TAG}' line, or misformatted: {_show(line)}"
        return f"unknown or unexpected line: {_show(line)}"


# --------------------------------------------------------------------------------------------------------------
# Nonces, challenges, verification.


def new_nonce() -> str:
    """A fresh random nonce: 22 ASCII letters and digits (about 131 bits) from ``secrets``."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(_NONCE_LENGTH))


def _utc_now(now: datetime | None, what: str = "now") -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {now!r}")
    return now.astimezone(UTC)


def challenge(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    lifetime: timedelta,
    statement: str | None,
    now: datetime | None = None,
) -> SiweMessage:
    """The message a client is asked to sign: issued now (whole seconds), expiring ``lifetime`` later.

    ``address`` may be all lower-case (as many wallets report it) and is checksummed here; a mixed-case
    address must already carry a correct EIP-55 checksum. Invalid input raises ``SiweError("malformed")``.
    """
    if isinstance(address, str) and _ADDRESS_RE.fullmatch(address) is not None:
        digits = address[2:]
        if digits == digits.lower() or digits == digits.upper():
            address = to_checksum_address(address)
    issued_at = _utc_now(now).replace(microsecond=0)
    expiration_time = (issued_at + lifetime).replace(microsecond=0)
    if expiration_time <= issued_at:
        raise _malformed(f"lifetime must be at least one second, got {lifetime}")
    return SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        version=_VERSION,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        statement=statement,
        expiration_time=expiration_time,
    )


_SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_SIGNATURE_HEX_RE: Final = re.compile(r"0x[0-9A-Fa-f]{130}")


def _signature_bytes(signature: object) -> bytes:
    """65 bytes r || s || v with v in {27, 28} (or {0, 1}, normalised to 27/28); else ``signature_invalid``."""
    if isinstance(signature, str):
        if _SIGNATURE_HEX_RE.fullmatch(signature) is None:
            raise SiweError(
                "signature_invalid", "signature must be 0x followed by 130 hex digits (65 bytes: r || s || v)"
            )
        raw = bytes.fromhex(signature[2:])
    elif isinstance(signature, bytes | bytearray):
        raw = bytes(signature)
    else:
        raise SiweError("signature_invalid", f"signature must be a hex string or bytes, not {type(signature).__name__}")
    if len(raw) != 65:
        raise SiweError("signature_invalid", f"signature must be 65 bytes (r || s || v), got {len(raw)}")
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        raise SiweError("signature_invalid", "signature r or s is out of range")
    if v in (0, 1):
        v += 27
    if v not in (27, 28):
        raise SiweError("signature_invalid", f"signature recovery byte v must be 27 or 28 (or 0 or 1), got {raw[64]}")
    return raw[:64] + bytes([v])


def _recover(text: str, signature: bytes) -> str:
    try:
        recovered: str = Account.recover_message(encode_defunct(text=text), signature=signature)
    except (ValueError, BadSignature, EthUtilsValidationError) as exc:
        raise SiweError("signature_invalid", f"signature does not recover to a public key: {exc}") from exc
    return recovered


def verify(
    text: str,
    signature: str | bytes,
    *,
    domain: str,
    chain_id: int,
    nonce: str | None = None,
    now: datetime | None = None,
    max_lifetime: timedelta = timedelta(minutes=10),
) -> SiweMessage:
    """Check a signed SIWE message and return it parsed; raise ``SiweError`` with a stable ``code`` if refused.

    In order: the text parses strictly (``malformed``); its domain and chain id are the expected ones
    (``wrong_domain``, ``wrong_chain``); its nonce is ``nonce`` when given (``wrong_nonce``); it has an
    expiration time at most ``max_lifetime`` after its issue time (``lifetime_too_long``, which is also the
    code for a missing expiration time, i.e. an unbounded lifetime); it was issued no later than ``now`` plus
    ``CLOCK_SKEW`` and is past its not-before time (``not_yet_valid``); ``now`` is before its expiration time
    and the expiration time is after the issue time (``expired``); and the EIP-191 ``personal_sign``
    signature recovers to its address (``signature_invalid``).

    The caller still owns the nonce: look it up before calling and consume it after success, so a message
    cannot be replayed.
    """
    current = _utc_now(now)
    message = SiweMessage.parse(text)
    if message.domain != domain:
        raise SiweError("wrong_domain", f"message is for domain {message.domain!r}, expected {domain!r}")
    if message.chain_id != chain_id:
        raise SiweError("wrong_chain", f"message is for chain {message.chain_id}, expected {chain_id}")
    if nonce is not None and not secrets.compare_digest(message.nonce.encode(), nonce.encode()):
        raise SiweError("wrong_nonce", "message nonce is not the one issued")
    expiration_time = message.expiration_time
    if expiration_time is None:
        raise SiweError("lifetime_too_long", "message has no expiration time (unbounded lifetime)")
    if expiration_time - message.issued_at > max_lifetime:
        raise SiweError(
            "lifetime_too_long",
            f"message lifetime {expiration_time - message.issued_at} exceeds the maximum {max_lifetime}",
        )
    if message.issued_at > current + CLOCK_SKEW:
        raise SiweError("not_yet_valid", f"message is issued in the future ({_format_time(message.issued_at)})")
    if message.not_before is not None and message.not_before > current:
        raise SiweError("not_yet_valid", f"message is not valid before {_format_time(message.not_before)}")
    if expiration_time <= message.issued_at:
        raise SiweError("expired", "message expires no later than it is issued")
    if current >= expiration_time:
        raise SiweError("expired", f"message expired at {_format_time(expiration_time)}")
    recovered = _recover(text, _signature_bytes(signature))
    if recovered != message.address:
        raise SiweError("signature_invalid", f"signature is by {recovered}, not by {message.address}")
    return message
