"""Every table of the platform database (SQLAlchemy 2 declarative), one ``Base``.

The vault's documents and release log, the API's login nonces, member profiles, grants, access
requests, emergencies and operator actions, and the chain indexer's blocks, events, transactions
and cursors. Schema changes go through the Alembic migrations in ``db/migrations``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DocumentRow(Base):
    """One stored document. Content and metadata are ciphertext under the document's data key."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    subject: Mapped[str] = mapped_column(String(42))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(66))
    issuer: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: Nanosecond storage order (strictly increasing per process): "most recently stored" (SPEC §4).
    stored_ns: Mapped[int] = mapped_column(BigInteger)
    content_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    meta: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    commitment: Mapped[str] = mapped_column(String(66))
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    #: "pending" until the commitment is anchored on chain, then "current"; "deleted" after shredding;
    #: "superseded" once a correction replaced it (SPEC §9.4).
    state: Mapped[str] = mapped_column(String(16))
    anchor_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tombstone_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)

    __table_args__ = (
        Index("ix_documents_subject_resource", "subject", "resource_id", "stored_ns"),
        Index("ix_documents_key_version", "key_version"),
    )


class ReleaseLogRow(Base):
    """The vault's append-only release log; ``idx`` runs 0, 1, 2… without gaps."""

    __tablename__ = "release_log"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    release_id: Mapped[str] = mapped_column(String(66), unique=True)
    subject: Mapped[str] = mapped_column(String(42))
    grantee: Mapped[str] = mapped_column(String(42))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuthNonce(Base):
    """A login challenge's nonce: single use, short-lived."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(42))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MemberProfile(Base):
    """Off-chain facts about a member (the chain keeps only roles, a hash of the org code, keys)."""

    __tablename__ = "member_profiles"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    org_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(42))


class CatalogEntryRow(Base):
    """Off-chain facts about a catalog entry (the chain keeps code, provider and sensitivity).

    ``self_declared`` (SPEC §6.1, v1.1): whether a subject's own document of the resource may be
    released when its provider has issued none (SPEC §4).
    """

    __tablename__ = "catalog_entries"

    resource_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    self_declared: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class GrantRecord(Base):
    """The terms of every grant relayed through this API (the chain keeps their digest).

    Only the terms: a grant's id is their EIP-712 digest, so they cannot differ from the chain's.
    Its state (uses, pause, revocation) is read from the indexed chain events (db/ledger_state.py).
    """

    __tablename__ = "grants"

    grant_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    subject: Mapped[str] = mapped_column(String(42))
    grantee: Mapped[str] = mapped_column(String(42))
    terms: Mapped[str] = mapped_column(Text)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    relayed_by: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: The terms a grant's status depends on (migration 0008), so that lists filter and page in SQL.
    valid_from: Mapped[int] = mapped_column(BigInteger, server_default="0")
    valid_until: Mapped[int] = mapped_column(BigInteger, server_default="0")
    max_uses: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (
        Index("ix_grants_subject", "subject"),
        Index("ix_grants_grantee", "grantee"),
        Index("ix_grants_order", "block_number", "grant_id"),
    )


class AccessRequestRow(Base):
    """A consumer's request to a subject; answered by a signed grant or a rejection."""

    __tablename__ = "access_requests"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(42))
    subject: Mapped[str] = mapped_column(String(42))
    resources: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(128))
    valid_for: Mapped[int] = mapped_column(BigInteger)
    max_uses: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    answered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: SPEC §9.2: a pending request reads as "expired" from this second on (migration 0007_rights).
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_access_requests_subject", "subject"), Index("ix_access_requests_consumer", "consumer"))


class EmergencyRecord(Base):
    """An emergency's scope and reason text (the chain keeps the reason's hash)."""

    __tablename__ = "emergencies"

    emergency_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    reason_text: Mapped[str] = mapped_column(Text)
    proposer: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))


class ActionRecord(Base):
    """Which logged-in member asked for each operator transaction (SPEC §3)."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(42))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    at: Mapped[int] = mapped_column(BigInteger)


# ---- chain index ----------------------------------------------------------------------------

#: An auto-incrementing 64-bit key (SQLite only auto-increments an INTEGER PRIMARY KEY).
_ID = BigInteger().with_variant(Integer(), "sqlite")


class IndexedBlock(Base):
    """A block the indexer has seen: one with events or ledger transactions, or the last block of a batch."""

    __tablename__ = "indexed_blocks"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class LedgerEvent(Base):
    """One decoded log of the ledger's contracts."""

    __tablename__ = "ledger_events"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(66))
    tx_index: Mapped[int] = mapped_column(Integer)
    #: Address of the emitting contract (ConsentLedger or AuditAnchor).
    contract: Mapped[str] = mapped_column(String(42))
    event: Mapped[str] = mapped_column(String(64))
    grant_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(42), nullable=True)
    grantee: Mapped[str | None] = mapped_column(String(42), nullable=True)
    consumer: Mapped[str | None] = mapped_column(String(42), nullable=True)
    resource: Mapped[str | None] = mapped_column(String(66), nullable=True)
    emergency_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    document_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    account: Mapped[str | None] = mapped_column(String(42), nullable=True)
    #: The event's arguments as JSON (bytes as 0x hex, integers of 2**53 and more as strings).
    args: Mapped[str] = mapped_column(Text)
    #: Release events: the request's deadline (a uint256, in decimal) and signature (0x hex).
    deadline: Mapped[str | None] = mapped_column(String(78), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("block_hash", "log_index", name="uq_ledger_events_block_log"),
        Index("ix_ledger_events_position", "block_number", "log_index"),
        Index("ix_ledger_events_event", "event", "block_number"),
        Index("ix_ledger_events_tx_hash", "tx_hash"),
        Index("ix_ledger_events_grant_id", "grant_id"),
        Index("ix_ledger_events_subject", "subject", "block_number"),
        Index("ix_ledger_events_grantee", "grantee", "block_number"),
        Index("ix_ledger_events_consumer", "consumer", "block_number"),
        Index("ix_ledger_events_resource", "resource", "block_number"),
        Index("ix_ledger_events_emergency_id", "emergency_id"),
        Index("ix_ledger_events_request_id", "request_id"),
        Index("ix_ledger_events_document_id", "document_id"),
        Index("ix_ledger_events_account", "account"),
    )


class LedgerTransaction(Base):
    """A transaction sent directly to one of the ledger's contracts (reverted ones included)."""

    __tablename__ = "ledger_transactions"

    hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    tx_index: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(42))
    #: The contract called (the transaction's ``to``).
    recipient: Mapped[str] = mapped_column(String(42))
    #: The calldata, 0x hex.
    input: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_ledger_transactions_position", "block_number", "tx_index"),)


class IndexerState(Base):
    """The cursor of one indexer: every block up to ``last_block`` is indexed."""

    __tablename__ = "indexer_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_block: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(66))


#: The tables of the indexer (migrations 0003 and 0004).
INDEX_TABLES: tuple[Table, ...] = (  # type: ignore[assignment]
    IndexedBlock.__table__,
    LedgerEvent.__table__,
    LedgerTransaction.__table__,
    IndexerState.__table__,
)


# ---- the release path (DESIGN.md "The release path") ------------------------------------------


class ReleaseIntent(Base):
    """A department's signed release request, kept durably from admission to its outcome.

    Written by the API before anything is sent to the chain; the relayer claims pending intents,
    records them in one grouped transaction, and in the same database transaction that appends the
    block's releases to the release log marks each intent ``recorded`` (with its log index) or
    ``rejected`` (with the contract's refusal). The id is the release id,
    ``keccak256(grantee || request id)``: the idempotency key of SPEC §9.7.
    """

    __tablename__ = "release_intents"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    #: "grant" or "emergency"
    kind: Mapped[str] = mapped_column(String(16))
    #: grant id, or emergency id
    authority: Mapped[str] = mapped_column(String(66))
    grantee: Mapped[str] = mapped_column(String(42))
    subject: Mapped[str] = mapped_column(String(42))
    resource: Mapped[str] = mapped_column(String(66))
    request_id: Mapped[str] = mapped_column(String(66))
    #: the request's deadline (a uint256, in decimal) and the grantee's signature (0x hex)
    deadline: Mapped[str] = mapped_column(String(78))
    signature: Mapped[str] = mapped_column(Text)
    #: SHA-256 of the signed request as received: a different body under a used request id is 409.
    body_hash: Mapped[str] = mapped_column(String(66))
    #: the grant's terms (or the emergency's scope) as JSON, to build the transaction item
    terms: Mapped[str] = mapped_column(Text)
    #: the document chosen at admission (the subject's current one of that resource)
    document_id: Mapped[str] = mapped_column(String(66))
    #: pending -> submitted -> recorded | rejected | failed
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    #: the item's position in that transaction's grouped release
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_release_intents_status", "status", "created_at"),
        Index("ix_release_intents_tx_hash", "tx_hash"),
    )


class RelayerTransaction(Base):
    """A transaction the relayer signed, written BEFORE it is sent (so a crash between the send and
    the database cannot lose track of it): after a restart the relayer reads its receipt, or sends
    the very same signed bytes again."""

    __tablename__ = "relayer_transactions"

    tx_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    sender: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    #: what the transaction carries: "releases" (a grouped release) or "emergency-release"
    purpose: Mapped[str] = mapped_column(String(32))
    #: sent -> mined | dropped
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_relayer_transactions_status", "status", "nonce"),)


class RelayNonce(Base):
    """The next nonce of an account several processes send with (the API processes of
    ``qcl serve --workers N`` relaying grants with one relayer account): taken by one atomic
    update each, so two processes never sign two transactions with the same nonce."""

    __tablename__ = "relay_nonces"

    account: Mapped[str] = mapped_column(String(42), primary_key=True)
    next: Mapped[int] = mapped_column(BigInteger)


class LostCallRow(Base):
    """A grant, revocation or pause answered 2xx whose block the chain lost and which the ledger
    refused when its stored transaction was sent again (vault/reconcile.py): e.g. its signed
    deadline had passed. One row per call of a ``multicall``; what the recovery report lists."""

    __tablename__ = "lost_calls"

    tx_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    #: the call's position in its multicall
    call_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: "grant", "revocation", "pause", "resume" (else the ledger function's name)
    kind: Mapped[str] = mapped_column(String(32))
    grant_id: Mapped[str] = mapped_column(String(66))
    #: the contract's refusal, decoded (e.g. ``ConsentLedgerExpiredDeadline(deadline=…)``)
    reason: Mapped[str] = mapped_column(Text)
    flagged_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_lost_calls_grant", "grant_id"),)


class VerificationJobRow(Base):
    """A verification started with ``POST /v1/audit/verifications``: queued by any API process,
    run by the worker (``qcl worker``, or the single ``qcl dev`` process), its progress and report
    kept here, so any API process reads it and a worker restarted after a crash resumes it."""

    __tablename__ = "verification_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(42))
    from_block: Mapped[int] = mapped_column(BigInteger)
    to_block: Mapped[int] = mapped_column(BigInteger)
    total_events: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: queued -> running -> done | failed
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))
    events: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the report (JSON) once done; status, code and detail (JSON) when failed
    report: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_verification_jobs_status", "status", "created_at"),)


# ---- rights and service clocks (SPEC §9.3-9.5) ------------------------------------------------


class PurposeRow(Base):
    """A purpose of use: its code (hashed on chain), Chinese and English names and legal basis."""

    __tablename__ = "purposes"

    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: keccak256(utf8(code)), 0x hex: what grants sign.
    purpose_id: Mapped[str] = mapped_column(String(66), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(42))


class CorrectionRow(Base):
    """A subject's dispute of a document and its issuer's answer (SPEC §9.4)."""

    __tablename__ = "corrections"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(66))
    subject: Mapped[str] = mapped_column(String(42))
    issuer: Mapped[str] = mapped_column(String(42))
    resource: Mapped[str] = mapped_column(String(64))
    claim: Mapped[str] = mapped_column(Text)
    evidence: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: "open", then "corrected" or "rejected".
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[int] = mapped_column(BigInteger)
    #: Nanoseconds of the opening: orders corrections opened within the same second, newest first.
    opened_ns: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    due_at: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The replacement document of a "corrected" outcome (the disputed one is marked superseded).
    new_document_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    #: Salt of the anchored commitments (kept so an auditor can recompute them).
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    open_commitment: Mapped[str] = mapped_column(String(66))
    open_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
    outcome_commitment: Mapped[str | None] = mapped_column(String(66), nullable=True)
    outcome_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)

    __table_args__ = (
        Index("ix_corrections_subject", "subject", "opened_at"),
        Index("ix_corrections_issuer", "issuer", "opened_at"),
        Index("ix_corrections_document", "document_id"),
    )


class DemandRow(Base):
    """A consumer's demand for a data service not yet in the catalog (SPEC §9.5, 供需台账)."""

    __tablename__ = "demands"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(42))
    provider: Mapped[str] = mapped_column(String(42))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    resource_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: "open", "confirmed", "refused" or "published".
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    confirm_by: Mapped[int] = mapped_column(BigInteger)
    publish_by: Mapped[int] = mapped_column(BigInteger)
    confirmed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refused_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    published_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    published_code: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_demands_consumer", "consumer", "created_at"),
        Index("ix_demands_provider", "provider", "created_at"),
    )


# ---- notifications (SPEC §9.1) ------------------------------------------------------------------


class EventCounter(Base):
    """The last ``sequence`` given to a member's events: updated in the transaction that adds the
    event (``UPDATE … SET last = last + 1 RETURNING last`` locks the row until commit), so the
    sequence is gap-free and strictly increasing per member under any number of emitters."""

    __tablename__ = "event_counters"

    member: Mapped[str] = mapped_column(String(42), primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger)


class EventRow(Base):
    """One event addressed to one member (a state change it must learn about)."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    member: Mapped[str] = mapped_column(String(42))
    sequence: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[int] = mapped_column(BigInteger)
    #: The block of a chain-derived event; null off chain.
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The event's ``data`` as JSON.
    data: Mapped[str] = mapped_column(Text)
    #: The block whose content caused the event (chain events and the clocks they started): a
    #: reorg below it retracts the event with a corrective ``<type>.retracted`` event.
    source_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    retracted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("member", "sequence", name="uq_events_member_sequence"),
        Index("ix_events_source_block", "source_block"),
    )


class EventMarker(Base):
    """A one-time event already emitted (an expiry, an activation), by key, e.g.
    ``access_request.expired:0x…``; ``source_block`` as in :class:`EventRow` (a reorg below it
    forgets the marker)."""

    __tablename__ = "event_markers"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    at: Mapped[int] = mapped_column(BigInteger)
    source_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class EventClock(Base):
    """A chain object's deadline the worker turns into an event: ``grant.expired`` at the grant's
    ``validUntil``, ``emergency.expired`` at the emergency's. Written by the index store when the
    grant or activation is indexed; ``cancelled_block`` once the object ended otherwise (revoked,
    cancelled), ``fired_at`` once the event was emitted."""

    __tablename__ = "event_clocks"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[int] = mapped_column(BigInteger)
    #: JSON list of the recipients' addresses
    recipients: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)
    source_block: Mapped[int] = mapped_column(BigInteger)
    cancelled_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_event_clocks_due", "fired_at", "due_at"),)


class WebhookRow(Base):
    """A member's webhook endpoint (SPEC §9.1): events of ``types`` (JSON list; empty = all) are
    delivered to ``url`` signed per Standard Webhooks with ``secret``."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(42))
    url: Mapped[str] = mapped_column(Text)
    types: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_webhooks_owner", "owner"),)


class WebhookDelivery(Base):
    """One event to deliver to one webhook; delivered in ``sequence`` order per webhook."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(BigInteger)
    #: pending -> delivered | failed (given up after the retry period) | cancelled (webhook deleted)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    first_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_queue", "status", "webhook_id", "sequence"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "sequence"),
    )


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the answer's status, or the error (timeout, refused)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "at"),)
