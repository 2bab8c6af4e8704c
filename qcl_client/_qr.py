"""Scan to authorise (SPEC §9.6): a signed grant as the text of a QR code.

The text is ``qcl-grant:`` followed by the base64url (no padding) of the exact JSON body of
``POST /v1/grants`` (``{"message": {…Grant}, "signature": "0x…"}``); any client relays it as that
body. A QR shown at a counter stays within the counter limits: one grantee (and, when the clerk's
system checks it, the one scanning), one resource set, ``maxUses`` ≥ 1 and a window of at most one
day, so a photographed code is worth little.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

QR_PREFIX = "qcl-grant:"
#: The longest window of a QR-made grant (SPEC §9.6: at most one day).
MAX_QR_WINDOW = 86400
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class QrGrantError(ValueError):
    """Not a ``qcl-grant:`` text, or a grant outside the counter limits of SPEC §9.6."""


def encode_grant_qr(body: dict[str, Any]) -> str:
    """The QR text of a signed grant body (checked against the counter limits first)."""
    check_counter_grant(body)
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return QR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_grant_qr(text: str) -> dict[str, Any]:
    """The ``POST /v1/grants`` body a ``qcl-grant:`` text carries (QrGrantError when it is none).

    Only the shape is checked here; :func:`check_counter_grant` checks the limits."""
    text = text.strip()
    if not text.startswith(QR_PREFIX):
        raise QrGrantError(f"not a grant QR: the text does not start with {QR_PREFIX!r}")
    payload = text[len(QR_PREFIX) :]
    if not payload or not _B64URL.match(payload) or len(payload) % 4 == 1:
        raise QrGrantError("the grant QR is not base64url without padding")
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise QrGrantError(f"the grant QR does not hold JSON: {exc}") from None
    if (
        not isinstance(body, dict)
        or set(body) != {"message", "signature"}
        or not isinstance(body["message"], dict)
        or not isinstance(body["signature"], str)
    ):
        raise QrGrantError('the grant QR must hold exactly {"message": {...}, "signature": "0x..."}')
    return body


def _uint(message: dict[str, Any], name: str) -> int:
    value = message.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise QrGrantError(f"{name} must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise QrGrantError(f"{name} must be an integer") from None
    if number < 0:
        raise QrGrantError(f"{name} must not be negative")
    return number


def check_counter_grant(body: dict[str, Any], *, grantee: str | None = None, now: int | None = None) -> dict[str, Any]:
    """The grant's message if it keeps the counter limits of SPEC §9.6, else QrGrantError.

    ``grantee``: the clerk's own account; a QR addressed to anyone else is refused (a desk
    relays only what is for it). ``now``: also refuse a grant whose signature deadline passed."""
    message = body.get("message")
    if not isinstance(message, dict):
        raise QrGrantError("no Grant message")
    to = message.get("grantee")
    if not isinstance(to, str) or not _ADDRESS.match(to):
        raise QrGrantError("a counter grant names exactly one grantee (an address)")
    if grantee is not None and to.lower() != grantee.lower():
        raise QrGrantError(f"this QR authorises {to}, not {grantee}")
    resources = message.get("resources")
    if not isinstance(resources, list) or not resources:
        raise QrGrantError("a counter grant names one non-empty resource set")
    if _uint(message, "maxUses") < 1:
        raise QrGrantError("a counter grant is limited: maxUses must be at least 1 (0 would be unlimited)")
    start, until = _uint(message, "validFrom"), _uint(message, "validUntil")
    if until <= start:
        raise QrGrantError("validUntil must be after validFrom")
    if until - start > MAX_QR_WINDOW:
        raise QrGrantError(f"a counter grant lasts at most one day ({MAX_QR_WINDOW} s), not {until - start} s")
    if now is not None and _uint(message, "deadline") < now:
        raise QrGrantError("the grant's signature deadline has passed; ask for a new code")
    return message
