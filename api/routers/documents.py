"""Documents of the safe-deposit box: stored by their subject or issued by the resource's PROVIDER;
listed, read and crypto-shredded by their subject only."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chain_client import Role
from vault import DocumentInfo

from ..deps import CurrentMember, VaultDep
from ..errors import Problem
from ..middleware import nesting_exceeds
from ..schemas.catalog import CODE_PATTERN
from ..schemas.page import Page
from ..types import Address, Bytes32, Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=PROBLEM_RESPONSES)

DOC_ID_PATTERN = r"^0x[0-9a-fA-F]{64}$"
#: Stored metadata must always read back: at most this deep, this large (as UTF-8 JSON), this many keys.
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_KEYS = 50


class DocumentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
                    "resource": "id_card",
                    "content": base64.b64encode(b"%PDF-1.7 ...").decode(),
                    "metadata": {"number_suffix": "1234"},
                }
            ]
        },
    )
    subject: Address
    resource: str = Field(pattern=CODE_PATTERN)
    content: str = Field(
        min_length=1,
        description="the document's bytes, base64 (standard alphabet)",
        json_schema_extra={"pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description=(
            f"kept encrypted with the document: a JSON object of at most {MAX_METADATA_KEYS} keys, nested at most "
            f"{MAX_METADATA_DEPTH} deep, {MAX_METADATA_BYTES} bytes as UTF-8 JSON"
        ),
    )

    @field_validator("content")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content must be standard base64") from None
        return value

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Only what can always be read back: bounded, valid UTF-8 (no lone surrogates), finite numbers."""
        if value is None:
            return None
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys")
        if nesting_exceeds(value, MAX_METADATA_DEPTH):
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        try:
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            raise ValueError("metadata must be JSON of valid UTF-8 text and finite numbers") from None
        if len(encoded) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata exceeds {MAX_METADATA_BYTES} bytes")
        return value


class DocumentPublic(BaseModel):
    document_id: str
    subject: str
    resource: str
    commitment: str
    salt: str
    issuer: str
    issued_at: int
    size: int
    state: str
    tx_hash: str | None = None


class DocumentContent(DocumentPublic):
    content: str = Field(description="base64")
    metadata: dict[str, Any] | None = None


class DocumentDeletedPublic(BaseModel):
    document_id: str
    deleted: bool
    tombstone_tx: str | None = Field(description="null while the tombstone waits for the chain (retried)")


def _public(info: DocumentInfo, tx_hash: str | None = None) -> DocumentPublic:
    return DocumentPublic(
        document_id=info.document_id,
        subject=info.subject,
        resource=info.resource,
        commitment=info.commitment,
        salt=info.salt,
        issuer=info.issuer,
        issued_at=info.issued_at,
        size=info.size,
        state=info.state,
        tx_hash=tx_hash or info.anchor_tx,
    )


@router.post("", response_model=DocumentPublic, status_code=201)
def store(body: DocumentCreate, member: CurrentMember, vault: VaultDep) -> DocumentPublic:
    """A SUBJECT stores into its own box; a PROVIDER issues a document of its resource to ``subject``."""
    own = body.subject == member.address and Role.SUBJECT in member.roles
    if not own and Role.PROVIDER not in member.roles:
        raise Problem(403, "role_required", "store your own documents as SUBJECT, or issue them as the PROVIDER")
    content = base64.b64decode(body.content, validate=True)
    stored = vault.store_document(
        subject=body.subject, resource=body.resource, content=content, issuer=member.address, metadata=body.metadata
    )
    return _public(stored.document, stored.tx_hash)


@router.get("", response_model=Page[DocumentPublic])
def list_documents(
    member: CurrentMember,
    vault: VaultDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[DocumentPublic]:
    """The caller's own documents (current and deleted), newest first."""
    items, total = vault.document_page(member.address, offset=offset, limit=limit)
    return Page[DocumentPublic](items=[_public(i) for i in items], offset=offset, limit=limit, total=total)


def _doc_id(value: str) -> str:
    if not re.match(DOC_ID_PATTERN, value):
        raise Problem(422, "invalid_input", "document id must be 0x followed by 64 hex digits")
    return value.lower()


@router.get("/{document_id}", response_model=DocumentContent)
def read(document_id: Bytes32, member: CurrentMember, vault: VaultDep) -> DocumentContent:
    """The plaintext, to the document's subject only (404 for anyone else; 410 once shredded)."""
    opened = vault.read_document(_doc_id(document_id), subject=member.address)
    return DocumentContent(
        **_public(opened.document).model_dump(),
        content=base64.b64encode(opened.content).decode(),
        metadata=opened.metadata,
    )


@router.delete("/{document_id}", response_model=DocumentDeletedPublic)
def shred(document_id: Bytes32, member: CurrentMember, vault: VaultDep) -> DocumentDeletedPublic:
    """Crypto-shred: the data key is destroyed and a tombstone anchored on chain."""
    doc_id = _doc_id(document_id)
    tombstone = vault.delete_document(doc_id, subject=member.address)
    return DocumentDeletedPublic(document_id=doc_id, deleted=True, tombstone_tx=tombstone)
