"""The department's side of a release: open the sealed document and check its commitment."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import Any

from . import crypto, sealing
from .errors import VaultError


class CommitmentMismatch(VaultError):
    """The opened content does not match the commitment (in the answer or anchored on chain)."""


@dataclass(frozen=True)
class OpenedRelease:
    content: bytes
    document_id: str
    commitment: str


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def open_release(
    answer: dict[str, Any],
    private_key: sealing.PrivateKey,
    *,
    grant_id: bytes,
    request_id: bytes,
    anchored_commitment: bytes | None = None,
) -> OpenedRelease:
    """Open the body of ``POST /v1/releases`` (or an emergency release).

    Decrypts ``sealed`` with the department's private key, recomputes
    ``sha256(salt || content)`` and compares it with the answer's ``commitment`` and, when given,
    with the commitment anchored on chain (``Ledger.document(id).commitment``). Raises
    :class:`~vault.errors.DecryptionError` or :class:`CommitmentMismatch`.
    """
    document = answer["document"]
    content = sealing.open_sealed(base64.b64decode(answer["sealed"], validate=True), private_key, grant_id, request_id)
    computed = crypto.commitment(_hex(document["salt"]), content)
    if not hmac.compare_digest(computed, _hex(document["commitment"])):
        raise CommitmentMismatch("the released content does not match the commitment in the answer")
    if anchored_commitment is not None and not hmac.compare_digest(computed, anchored_commitment):
        raise CommitmentMismatch("the released content does not match the commitment anchored on chain")
    return OpenedRelease(content=content, document_id=document["document_id"], commitment=document["commitment"])
