"""The digital safe-deposit box (数字保险箱): store, read, shred and release documents.

Release path (DESIGN.md; the grouped, durable machinery is in :mod:`vault.releases`): check the
department's signed request off chain and find the subject's current document, write a durable
intent, let the relayer record it on chain (grouped with others) and append it to the release log
in chain order, and only then unwrap the data key, decrypt and seal to the department's HPKE key.
Any chain failure before the receipt leaves nothing decrypted, released or logged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address
from sqlalchemy import and_, delete, func, select, update

from chain_client import ChainError, ChainUnavailable, Ledger, eip712
from chain_client.ids import checksum, resource_id
from chain_client.relayer import RawSender
from chain_client.types import EmergencyScope, GrantTerms
from db import paging, release_log
from db.models import CatalogEntryRow, DocumentRow
from db.store import Store

from . import crypto, sealing
from .errors import (
    DecryptionError,
    DocumentDeleted,
    DocumentNotFound,
    InvalidInput,
    KeyVersionUnavailable,
    NoCurrentDocument,
    ReleaseRefused,
    VaultError,
)
from .keyring import KeyRing
from .reconcile import keep_ledger_transactions
from .releases import MAX_ATTEMPTS, Intent, ReleaseDesk, ReleaseRelayer, ReleaseRequest

log = logging.getLogger("qcl.vault")

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: How long a catalog entry's provider read from the chain is reused.
PROVIDER_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class DocumentInfo:
    document_id: str
    subject: str
    resource: str
    resource_id: str
    issuer: str
    issued_at: int
    commitment: str
    salt: str
    size: int
    state: str
    anchor_tx: str | None
    key_version: int

    @classmethod
    def of(cls, row: DocumentRow) -> DocumentInfo:
        return cls(
            document_id=row.id,
            subject=row.subject,
            resource=row.resource,
            resource_id=row.resource_id,
            issuer=row.issuer,
            issued_at=row.created_at,
            commitment=row.commitment,
            salt="0x" + row.salt.hex(),
            size=row.size,
            state=row.state,
            anchor_tx=row.anchor_tx,
            key_version=row.key_version,
        )


@dataclass(frozen=True)
class StoredDocument:
    document: DocumentInfo
    tx_hash: str


@dataclass(frozen=True)
class OpenedDocument:
    document: DocumentInfo
    content: bytes
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Release:
    release_id: str
    tx_hash: str
    block_number: int
    sealed: bytes
    document: DocumentInfo
    log_index: int


@dataclass(frozen=True)
class RotationReport:
    version: int
    rewrapped: int
    retired: list[int]


class Vault:
    """The safe-deposit box. Collaborators come in through the constructor.

    Given a ``ledger``, the vault's database keeps every transaction the ledger's operator (and
    relay) account signs, before it is sent (:func:`vault.reconcile.keep_ledger_transactions`)."""

    def __init__(
        self, *, store: Store, keyring: KeyRing, ledger: Ledger | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.keyring = keyring
        self._ledger = ledger
        if ledger is not None:
            keep_ledger_transactions(ledger, store)
        self._clock = clock
        self._last_ns = 0
        self._ns_lock = threading.Lock()
        #: Admission of release requests and waiting for their outcome.
        self.desk = ReleaseDesk(store=store)
        self._relayer: ReleaseRelayer | None = None
        self._providers: dict[str, tuple[float, str]] = {}
        self._provider_lock = threading.Lock()

    @property
    def ledger(self) -> Ledger:
        """The chain; a vault opened for maintenance only (rotation) has none."""
        if self._ledger is None:
            raise VaultError("this vault was opened without a chain connection")
        return self._ledger

    def _next_ns(self) -> int:
        with self._ns_lock:
            self._last_ns = max(self._last_ns + 1, time.time_ns())
            return self._last_ns

    # ---- documents -------------------------------------------------------------------------------

    def store_document(
        self, *, subject: str, resource: str, content: bytes, issuer: str, metadata: dict[str, Any] | None = None
    ) -> StoredDocument:
        """Encrypt and keep a document; anchor its commitment and issuer on chain.

        The row stays invisible ("pending") until the anchor's receipt arrives; a chain failure
        removes it again, so nothing is kept that the chain does not know of.
        """
        subject, issuer = _address(subject, "subject"), _address(issuer, "issuer")
        if not content:
            raise InvalidInput("content is empty")
        if len(content) > MAX_DOCUMENT_BYTES:
            raise InvalidInput(f"content exceeds {MAX_DOCUMENT_BYTES} bytes")
        rid = resource_id(resource)
        doc_id = os.urandom(32)
        salt = os.urandom(32)
        data_key = self.keyring.profile.new_key()
        version = self.keyring.current_version()
        doc_hex = "0x" + doc_id.hex()
        aad = crypto.content_aad(doc_id, subject)
        content_nonce, sealed_content = self.keyring.profile.encrypt_parts(data_key, content, aad)
        row = DocumentRow(
            id=doc_hex,
            subject=subject,
            resource=resource,
            resource_id="0x" + rid.hex(),
            issuer=issuer,
            created_at=int(self._clock()),
            stored_ns=self._next_ns(),
            content_nonce=content_nonce,
            content=sealed_content,
            meta=(
                self.keyring.profile.encrypt(data_key, json.dumps(metadata, sort_keys=True).encode(), aad + b"/meta")
                if metadata is not None
                else None
            ),
            salt=salt,
            commitment="0x" + crypto.commitment(salt, content).hex(),
            key_version=version,
            wrapped_key=self.keyring.wrap(version, data_key, crypto.wrap_aad(doc_id, subject, version)),
            size=len(content),
            state="pending",
        )
        with self.store.session() as s:
            s.add(row)
        self._confirm_key_version(row, data_key, doc_id)
        try:
            receipt = self.ledger.anchor_document(doc_id, subject, rid, bytes.fromhex(row.commitment[2:]), issuer)
        except BaseException:
            with self.store.session() as s:
                s.execute(delete(DocumentRow).where(DocumentRow.id == doc_hex))
            raise
        with self.store.session() as s:
            s.execute(
                update(DocumentRow).where(DocumentRow.id == doc_hex).values(state="current", anchor_tx=receipt.tx_hash)
            )
        row.state, row.anchor_tx = "current", receipt.tx_hash
        return StoredDocument(document=DocumentInfo.of(row), tx_hash=receipt.tx_hash)

    def _confirm_key_version(self, row: DocumentRow, data_key: bytes, doc_id: bytes) -> None:
        """Make sure the KEK version the new row names was not retired meanwhile by another process.

        Runs after the row is committed and under the key ring's shared lock; retirement counts
        users and retires under the exclusive lock, so either it saw this row or we see it gone.
        """
        with self.keyring.locked(exclusive=False):
            if row.key_version in self.keyring.versions():
                return
            version = self.keyring.current_version()
            rewrapped = self.keyring.wrap(version, data_key, crypto.wrap_aad(doc_id, row.subject, version))
            with self.store.session() as s:
                s.execute(
                    update(DocumentRow)
                    .where(DocumentRow.id == row.id)
                    .values(key_version=version, wrapped_key=rewrapped)
                )
            row.key_version, row.wrapped_key = version, rewrapped

    def list_documents(self, subject: str, *, offset: int = 0, limit: int = 100) -> list[DocumentInfo]:
        """The subject's documents (current and deleted), newest first."""
        return self.document_page(subject, offset=offset, limit=limit)[0]

    def document_page(self, subject: str, *, offset: int = 0, limit: int = 100) -> tuple[list[DocumentInfo], int]:
        """One page of the subject's documents (current and deleted), newest first, and how many there are."""
        subject = _address(subject, "subject")
        with self.store.session() as s:
            rows, total = paging.page(
                s,
                DocumentRow,
                where=(DocumentRow.subject == subject, DocumentRow.state != "pending"),
                order_by=(DocumentRow.stored_ns.desc(),),
                offset=offset,
                limit=limit,
            )
        return [DocumentInfo.of(r) for r in rows], total

    def document_info(self, document_id: str, *, subject: str) -> DocumentInfo:
        return DocumentInfo.of(self._row(document_id, subject))

    def read_document(self, document_id: str, *, subject: str) -> OpenedDocument:
        """Decrypt a document for its owner. 404 for others, 410 once shredded."""
        row = self._row(document_id, subject)
        if row.state == "deleted" or row.wrapped_key is None:
            raise DocumentDeleted(f"document {document_id} was deleted")
        content, metadata = self._decrypt(row)
        return OpenedDocument(document=DocumentInfo.of(row), content=content, metadata=metadata)

    def delete_document(self, document_id: str, *, subject: str) -> str | None:
        """Crypto-shred: destroy the data key (and the ciphertext), then anchor a tombstone.

        Returns the tombstone's transaction hash, or None when the chain could not be reached;
        the document is gone either way and :meth:`anchor_pending_tombstones` retries.
        """
        row = self._row(document_id, subject)
        if row.state == "deleted":
            raise DocumentDeleted(f"document {document_id} was already deleted")
        with self.store.session() as s:
            s.execute(
                update(DocumentRow)
                .where(DocumentRow.id == row.id)
                .values(state="deleted", wrapped_key=None, content=b"", meta=None, deleted_at=int(self._clock()))
            )
        try:
            return self._anchor_tombstone(row.id)
        except ChainError as exc:
            log.warning("tombstone of %s not anchored yet: %s", row.id, exc)
            return None

    def anchor_pending_tombstones(self) -> int:
        """Anchor tombstones that a chain failure left pending; returns how many were anchored."""
        with self.store.session() as s:
            ids = s.scalars(
                select(DocumentRow.id).where(DocumentRow.state == "deleted", DocumentRow.tombstone_tx.is_(None))
            ).all()
        for doc_id in ids:
            self._anchor_tombstone(doc_id)
        return len(ids)

    def _anchor_tombstone(self, doc_id: str) -> str:
        from chain_client import errors as ce

        try:
            tx_hash = self.ledger.shred_document(bytes.fromhex(doc_id[2:])).tx_hash
        except ce.DocumentShredded:
            tx_hash = "0x" + "00" * 32  # already anchored by an earlier attempt whose answer was lost
        with self.store.session() as s:
            s.execute(update(DocumentRow).where(DocumentRow.id == doc_id).values(tombstone_tx=tx_hash))
        return tx_hash

    def supersede_document(self, document_id: str) -> bool:
        """Mark a current document "superseded" (SPEC §9.4: a correction replaced it).

        The row, its ciphertext and its anchor are kept and its subject can still read it; it is
        no longer the current document of its resource. False when it was not current.
        """
        with self.store.session() as s:
            done = s.execute(
                update(DocumentRow)
                .where(DocumentRow.id == document_id.lower(), DocumentRow.state == "current")
                .values(state="superseded")
            )
        return bool(getattr(done, "rowcount", 0))

    def current_document(
        self,
        subject: str,
        resource_id_hex: str,
        *,
        provider: str | None = None,
        self_declared: bool | None = None,
    ) -> DocumentRow:
        """SPEC §4 (v1.1): the document a release of ``resource_id_hex`` delivers.

        The most recently stored, not deleted document of that resource **issued by the catalog
        entry's** ``provider``; a document the subject stored themselves only when the entry is
        ``self_declared`` and no provider-issued one exists. Documents of any other issuer are
        never released. ``provider`` and ``self_declared`` default to the chain's catalog entry
        and the catalog's off-chain flag (table ``catalog_entries``).
        """
        document_id = self.current_document_id(subject, resource_id_hex, provider=provider, self_declared=self_declared)
        with self.store.session() as s:
            row = s.get(DocumentRow, document_id)
        assert row is not None  # documents are never removed (deleted ones keep their row)
        return row

    def current_document_id(
        self,
        subject: str,
        resource_id_hex: str,
        *,
        provider: str | None = None,
        self_declared: bool | None = None,
    ) -> str:
        """The id of :meth:`current_document` (the release path's hot spot): one statement reads the
        candidates' ids, issuers and states with the catalog's ``self_declared`` flag, and no
        document content is loaded."""
        subject = _address(subject, "subject")
        if provider is None:
            provider = self._catalog_provider(resource_id_hex)
        provider = _address(provider, "provider")
        resource_id_hex = resource_id_hex.lower()
        flag = (
            select(CatalogEntryRow.self_declared)
            .where(CatalogEntryRow.resource_id == resource_id_hex)
            .scalar_subquery()
        )
        query = (
            select(DocumentRow.id, DocumentRow.issuer, DocumentRow.state, flag)
            .where(
                DocumentRow.subject == subject,
                DocumentRow.resource_id == resource_id_hex,
                DocumentRow.issuer.in_([provider, subject]),
                DocumentRow.state != "pending",
            )
            .order_by(DocumentRow.stored_ns.desc())
        )
        with self.store.session() as session:
            found = session.execute(query).all()
        if self_declared is None:
            self_declared = bool(found and found[0][3])
        issuers = [provider] + ([subject] if self_declared and subject != provider else [])
        rows = [r for r in found if r[1] in issuers]
        for issuer in issuers:  # the provider's first; the subject's own only when it has none
            live = [r for r in rows if r[1] == issuer and r[2] == "current"]
            if live:
                return str(live[0][0])
        if rows:
            raise DocumentDeleted(f"the subject's {resource_id_hex} documents were deleted")
        raise NoCurrentDocument(f"the subject holds no releasable document of resource {resource_id_hex}")

    def _catalog_provider(self, resource_id_hex: str) -> str:
        """The provider of a catalog entry, read from the chain at most every few seconds (the
        release path asks for every request; a catalog entry's provider rarely changes)."""
        cached = self._providers.get(resource_id_hex)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        with self._provider_lock:  # one read of the chain at a time, however many requests need it
            cached = self._providers.get(resource_id_hex)
            if cached is not None and time.monotonic() < cached[0]:
                return cached[1]
            provider = self.ledger.resource(bytes.fromhex(resource_id_hex[2:])).provider
            self._providers[resource_id_hex] = (time.monotonic() + PROVIDER_CACHE_SECONDS, provider)
            return provider

    # ---- releases --------------------------------------------------------------------------------

    @property
    def relayer(self) -> ReleaseRelayer:
        """The release log's writer for this process (created on first use; see :mod:`vault.releases`).

        By default it sends with the ledger's relayer account, sharing that account's nonces with
        the ledger's other relayed transactions in this process.
        """
        if self._relayer is None:
            with self._ns_lock:
                if self._relayer is None:
                    relay = self.ledger.relay
                    sender = RawSender(
                        w3=self.ledger.w3, account=relay.account, chain_id=self.ledger.chain_id, nonces=relay.nonces
                    )
                    self.use_relayer(ReleaseRelayer(store=self.store, ledger=self.ledger, sender=sender))
        assert self._relayer is not None
        return self._relayer

    def use_relayer(self, relayer: ReleaseRelayer | None) -> None:
        """Attach the process's relayer (None: releases are recorded by a worker process)."""
        self._relayer = relayer
        if relayer is not None:
            relayer.notify = self.desk.waiters.notify
            self.desk.wake, self.desk.local = relayer.wake, True
        else:
            self.desk.wake, self.desk.local = (lambda: None), False

    def prepare_release(
        self, *, terms: GrantTerms, resource: bytes, request_id: bytes, deadline: int, signature: bytes
    ) -> tuple[ReleaseRequest, str]:
        """Check a grantee's signed request off chain and find the document it would release.

        Raises :class:`ReleaseRefused` for a signature that is not the grantee's. When the subject
        holds no such document, the chain is asked (a simulation: nothing recorded) first, so that a
        refused department learns nothing about which documents the subject holds.
        """
        domain = self.ledger.domain()
        grant_id = eip712.grant_digest(domain, terms.message())
        digest = eip712.release_request_digest(domain, grant_id, resource, request_id, deadline)
        signer = eip712.recover(digest, signature)
        if signer is None:
            raise ReleaseRefused("signature_invalid", "the release request signature is malformed")
        if signer != to_checksum_address(terms.grantee):
            raise ReleaseRefused("not_grantee", "the release request is not signed by the grantee")
        request = ReleaseRequest(
            kind="grant",
            authority=grant_id,
            grantee=to_checksum_address(terms.grantee),
            subject=to_checksum_address(terms.subject),
            resource=resource,
            request_id=request_id,
            deadline=deadline,
            signature=signature,
            terms=terms,
        )
        try:
            document_id = self.current_document_id(request.subject, "0x" + resource.hex())
        except (NoCurrentDocument, DocumentDeleted):
            self.ledger.check_release(terms, resource, request_id, deadline, signature)
            raise
        return request, document_id

    def prepare_emergency_release(
        self,
        *,
        scope: EmergencyScope,
        consumer: str,
        subject: str,
        resource: bytes,
        request_id: bytes,
        deadline: int,
        signature: bytes,
    ) -> tuple[ReleaseRequest, str]:
        """:meth:`prepare_release` for an emergency release (flagged ``emergency`` in the log)."""
        message = {
            "emergencyId": scope.emergency_id,
            "subject": subject,
            "resource": resource,
            "requestId": request_id,
            "deadline": deadline,
        }
        self._check_signer(
            eip712.signable(self.ledger.domain(), "EmergencyReleaseRequest", message), signature, consumer
        )
        request = ReleaseRequest(
            kind="emergency",
            authority=scope.emergency_id,
            grantee=to_checksum_address(consumer),
            subject=to_checksum_address(subject),
            resource=resource,
            request_id=request_id,
            deadline=deadline,
            signature=signature,
            terms=scope,
        )
        try:
            document_id = self.current_document_id(request.subject, "0x" + resource.hex())
        except (NoCurrentDocument, DocumentDeleted):
            self.ledger.check_emergency_release(scope, subject, resource, request_id, deadline, signature)
            raise
        return request, document_id

    def deliver(self, intent: Intent, recipient_key: bytes) -> Release:
        """The document of a recorded intent, sealed to ``recipient_key`` (SPEC §4). Only ever for
        an intent the chain recorded: no receipt, no document."""
        if intent.status != "recorded" or intent.tx_hash is None or intent.log_index is None:
            raise VaultError(f"release {intent.id} is not recorded")
        if len(recipient_key) not in (sealing.X25519_KEY_BYTES, sealing.HYBRID_KEY_BYTES):
            raise ReleaseRefused("hpke_key_missing", "the consumer has no usable HPKE key registered")
        with self.store.session() as s:
            row = s.get(DocumentRow, intent.document_id)
        if row is None:
            raise DocumentNotFound(f"no document {intent.document_id}")
        content, _ = self._decrypt(row)
        sealed = sealing.seal(content, recipient_key, _b32(intent.authority), _b32(intent.request_id))
        return Release(
            release_id=intent.id,
            tx_hash=intent.tx_hash,
            block_number=int(intent.block_number or 0),
            sealed=sealed,
            document=DocumentInfo.of(row),
            log_index=intent.log_index,
        )

    def release(
        self, *, terms: GrantTerms, resource: bytes, request_id: bytes, deadline: int, signature: bytes
    ) -> Release:
        """Release the subject's current document of ``resource`` under a grant, synchronously:
        admit, record (this process's relayer, one group), deliver. The API uses the same steps
        with many requests per group (see :mod:`vault.releases`)."""
        request, document_id = self.prepare_release(
            terms=terms, resource=resource, request_id=request_id, deadline=deadline, signature=signature
        )
        return self._release_now(request, document_id)

    def emergency_release(
        self,
        *,
        scope: EmergencyScope,
        consumer: str,
        subject: str,
        resource: bytes,
        request_id: bytes,
        deadline: int,
        signature: bytes,
    ) -> Release:
        """Release under an approved emergency; the log entry is flagged ``emergency``."""
        request, document_id = self.prepare_emergency_release(
            scope=scope,
            consumer=consumer,
            subject=subject,
            resource=resource,
            request_id=request_id,
            deadline=deadline,
            signature=signature,
        )
        return self._release_now(request, document_id)

    def _release_now(self, request: ReleaseRequest, document_id: str) -> Release:
        key = self._recipient_key(request.grantee)
        intent, _ = self.desk.admit(request, document_id=document_id)
        for _attempt in range(MAX_ATTEMPTS + 1):
            if intent.final:
                break
            self.relayer.step()
            found = self.desk.find(intent.id)
            assert found is not None
            intent = found
        if not intent.final:
            message = f"release {intent.id} is not recorded yet; send the same request again"
            raise ChainUnavailable(message, public=message)
        if intent.status != "recorded":
            raise refusal(intent)
        return self.deliver(intent, key)

    def _check_signer(self, signable: Any, signature: bytes, expected: str) -> None:
        try:
            signer = Account.recover_message(signable, signature=signature)
        except Exception:  # noqa: BLE001 - malformed signatures of every kind
            raise ReleaseRefused("signature_invalid", "the release request signature is malformed") from None
        if signer != to_checksum_address(expected):
            raise ReleaseRefused("not_grantee", "the release request is not signed by the grantee")

    def _recipient_key(self, consumer: str) -> bytes:
        key = self.ledger.member(consumer).hpke_key
        if len(key) not in (sealing.X25519_KEY_BYTES, sealing.HYBRID_KEY_BYTES):
            raise ReleaseRefused("hpke_key_missing", "the consumer has no usable HPKE key registered")
        return key

    def log_size(self) -> int:
        """Entries in the release log."""
        return release_log.log_size(self.store)

    def release_log(self, *, start: int = 0, end: int | None = None) -> list[bytes]:
        """Canonical bytes of log entries ``start`` (inclusive) to ``end`` (exclusive)."""
        return release_log.log_entries(self.store, start=start, end=end)

    # ---- key rotation ----------------------------------------------------------------------------

    def rotate(self, *, progress: Callable[[int, int], None] | None = None, batch: int = 200) -> RotationReport:
        """Re-wrap every data key under a new KEK version, then retire versions nothing uses.

        Resumable: if documents still use older versions (an interrupted rotation), this finishes
        that rotation instead of starting another. Each document is re-wrapped in its own
        compare-and-set update, so a crash at any point leaves every key wrapped under a version
        the key ring still holds.
        """
        if not self._count_older():
            self.keyring.add_version()
        target = self.keyring.current_version()
        total, done = self._count_older(), 0
        if progress:
            progress(done, total)
        while True:
            with self.store.session() as s:
                rows = s.execute(
                    select(DocumentRow.id, DocumentRow.subject, DocumentRow.key_version, DocumentRow.wrapped_key)
                    .where(DocumentRow.key_version != target, DocumentRow.wrapped_key.is_not(None))
                    .limit(batch)
                ).all()
            if not rows:
                break
            for doc_id, subject, version, wrapped in rows:
                assert wrapped is not None  # selected with wrapped_key IS NOT NULL
                raw_id = bytes.fromhex(doc_id[2:])
                data_key = self.keyring.unwrap(version, wrapped, crypto.wrap_aad(raw_id, subject, version))
                rewrapped = self.keyring.wrap(target, data_key, crypto.wrap_aad(raw_id, subject, target))
                with self.store.session() as s:
                    s.execute(
                        update(DocumentRow)
                        .where(
                            and_(
                                DocumentRow.id == doc_id,
                                DocumentRow.key_version == version,
                                DocumentRow.wrapped_key.is_not(None),
                            )
                        )  # not shredded meanwhile
                        .values(key_version=target, wrapped_key=rewrapped)
                    )
                done += 1
                if progress:
                    progress(done, total)
        return RotationReport(version=target, rewrapped=done, retired=self.retire_unused())

    def retire_unused(self) -> list[int]:
        """Destroy every non-current KEK version that no document's data key uses any more.

        Counting and retiring happen under the key ring's exclusive lock (see
        :meth:`_confirm_key_version`), so a document stored concurrently is never left with a
        retired version.
        """
        retired = []
        with self.keyring.locked(exclusive=True):
            with self.store.session() as s:
                used = set(
                    s.scalars(
                        select(DocumentRow.key_version).where(DocumentRow.wrapped_key.is_not(None)).distinct()
                    ).all()
                )
            for version in self.keyring.versions():
                if version != self.keyring.current_version() and version not in used:
                    self.keyring.retire(version)
                    retired.append(version)
        return retired

    def key_usage(self) -> dict[int, int]:
        """Key version -> number of live data keys wrapped under it."""
        with self.store.session() as s:
            rows = s.execute(
                select(DocumentRow.key_version, func.count())
                .where(DocumentRow.wrapped_key.is_not(None))
                .group_by(DocumentRow.key_version)
            ).all()
        return {int(v): int(n) for v, n in rows}

    def check_documents(self, *, batch: int = 200) -> tuple[int, list[str]]:
        """Open every live document (unwrap its data key, decrypt content and metadata): how many
        opened, and the ids of those that did not (e.g. after a restore with the wrong key ring)."""
        opened, after = 0, ""
        failed: list[str] = []
        while True:
            with self.store.session() as s:
                rows = s.scalars(
                    select(DocumentRow)
                    .where(DocumentRow.wrapped_key.is_not(None), DocumentRow.id > after)
                    .order_by(DocumentRow.id)
                    .limit(batch)
                ).all()
            if not rows:
                return opened, failed
            for row in rows:
                try:
                    self._decrypt(row)
                    opened += 1
                except (DecryptionError, ValueError):
                    failed.append(row.id)
            after = rows[-1].id

    def _count_older(self) -> int:
        with self.store.session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(DocumentRow)
                    .where(
                        DocumentRow.key_version != self.keyring.current_version(), DocumentRow.wrapped_key.is_not(None)
                    )
                )
                or 0
            )

    # ---- internals -------------------------------------------------------------------------------

    def _row(self, document_id: str, subject: str) -> DocumentRow:
        subject = _address(subject, "subject")
        with self.store.session() as s:
            row = s.get(DocumentRow, document_id.lower())
        if row is None or row.subject != subject or row.state == "pending":
            raise DocumentNotFound(f"no document {document_id}")
        return row

    def _decrypt(self, row: DocumentRow) -> tuple[bytes, dict[str, Any] | None]:
        if row.wrapped_key is None:
            raise DocumentDeleted(f"document {row.id} was deleted")
        raw_id = bytes.fromhex(row.id[2:])
        try:
            data_key = self.keyring.unwrap(
                row.key_version, row.wrapped_key, crypto.wrap_aad(raw_id, row.subject, row.key_version)
            )
        except KeyVersionUnavailable:
            raise DecryptionError() from None
        aad = crypto.content_aad(raw_id, row.subject)
        content = self.keyring.profile.decrypt_parts(data_key, row.content_nonce, row.content, aad)
        metadata = json.loads(self.keyring.profile.decrypt(data_key, row.meta, aad + b"/meta")) if row.meta else None
        return content, metadata


def _address(value: str, what: str) -> str:
    try:
        return checksum(value)
    except (ValueError, TypeError):
        raise InvalidInput(f"{what} is not a valid address: {value!r}") from None


def _b32(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def refusal(intent: Intent) -> Exception:
    """The error a refused (or failed) intent answers with: the contract's typed refusal."""
    from chain_client import errors as ce

    if intent.status == "failed":
        return ce.TransactionFailed(f"release {intent.id} could not be recorded", tx_hash=intent.tx_hash)
    name = intent.error or "ContractRevert"
    return ce.REVERT_CLASSES.get(name, ce.ContractRevert)(name, {}, tx_hash=intent.tx_hash)
