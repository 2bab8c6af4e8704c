"""Audit resources (SPEC §6, §7): trail, verification, checkpoints and RFC 9162 proofs. AUDITOR only."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from audit import merkle
from audit.trail import Auditor
from chain_client.indexer import Indexer
from db.models import EmergencyRecord, MemberProfile, ReleaseLogRow

from ..background import VerificationJob, VerificationJobs
from ..deps import AuditorMember, LedgerDep, VaultDep
from ..errors import Problem, lookup
from ..types import Address, Bytes32, Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)


def auditor_for(request: Request, ledger: LedgerDep, vault: VaultDep) -> Auditor:
    """The auditor of this deployment: over the index (brought up to date first) when the API
    runs the indexer, over RPC otherwise."""

    def private_texts() -> list[str]:
        with vault.store.session() as s:
            names = [p.name for p in s.scalars(select(MemberProfile)).all()]
            codes = [p.org_code for p in s.scalars(select(MemberProfile)).all() if p.org_code]
            reasons = [e.reason_text for e in s.scalars(select(EmergencyRecord)).all()]
        return names + codes + reasons

    indexer: Indexer | None = request.app.state.indexer
    if indexer is not None:
        indexer.sync()  # raises ChainUnavailable (503) when the chain does not answer
    settings = request.app.state.settings
    return Auditor(
        ledger=ledger,
        log_entries=vault.release_log,
        private_texts=private_texts,
        indexer=indexer,
        workers=settings.verify_workers,
    )


AuditorDep = Annotated[Auditor, Depends(auditor_for)]


class TrailEvent(BaseModel):
    event: str
    block_number: int
    log_index: int
    tx_hash: str
    args: dict[str, Any]


class TrailPage(BaseModel):
    items: list[TrailEvent]
    offset: int
    limit: int


@router.get("/trail", response_model=TrailPage)
def trail(
    auditor: AuditorMember,
    audit: AuditorDep,
    subject: Annotated[Address | None, Query()] = None,
    grantee: Annotated[Address | None, Query()] = None,
    resource: Annotated[Bytes32 | None, Query()] = None,
    from_block: Annotated[int, Query(ge=0, le=2**63)] = 0,
    to_block: Annotated[int | None, Query(ge=0, le=2**63)] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> TrailPage:
    """Grants, revocations, pauses, releases and emergencies, in chain order."""
    events = audit.trail(
        subject=subject,
        grantee=grantee,
        resource=bytes.fromhex(resource[2:]) if resource else None,
        from_block=from_block,
        to_block=to_block,
    )
    return TrailPage(items=[TrailEvent(**e) for e in events[offset : offset + limit]], offset=offset, limit=limit)


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_block: int = Field(0, ge=0, le=2**63)
    to_block: int | None = Field(None, ge=0, le=2**63)

    @field_validator("from_block", "to_block", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        """JSON true/false are not block numbers (lax ``int`` took false as block 0); 7.0 is 7."""
        if isinstance(value, bool):
            raise ValueError("must be a block number, not a boolean")
        return value


class ViolationPublic(BaseModel):
    check: int
    code: str
    detail: str
    tx_hash: str | None
    log_index: int | None


class VerifyReport(BaseModel):
    ok: bool
    from_block: int
    to_block: int
    releases: int
    emergency_releases: int
    grants: int
    log_entries: int
    checkpoints: int
    transactions_scanned: int
    signatures_checked: int
    violations: list[ViolationPublic]


@router.post("/verify", response_model=VerifyReport)
def verify(auditor: AuditorMember, audit: AuditorDep, body: VerifyRequest | None = None) -> VerifyReport:
    """Checks 1-4 of SPEC §7 over a block range; every violation names its transaction or log entry."""
    body = body or VerifyRequest()
    if body.to_block is not None and body.to_block < body.from_block:
        raise Problem(422, "invalid_range", "to_block is before from_block")
    report = audit.verify(from_block=body.from_block, to_block=body.to_block)
    return VerifyReport(**report.as_dict())


class VerificationPublic(BaseModel):
    id: str
    status: Literal["running", "done", "failed"]
    stage: str = Field(description="events (replaying the chain), log, calldata, signatures")
    events: int = Field(description="events replayed so far")
    total_events: int | None = Field(description="events the replay reads (null over RPC)")
    from_block: int
    to_block: int
    started_at: float
    finished_at: float | None
    report: VerifyReport | None = Field(description="the report, once done")
    error: dict[str, Any] | None = Field(description="status, code and detail, when failed")


_TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "verifications already running (too_many_verifications)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemPublic"}}},
    }
}


@router.post("/verifications", response_model=VerificationPublic, status_code=202, responses=_TOO_MANY)
def start_verification(
    request: Request, auditor: AuditorMember, audit: AuditorDep, body: VerifyRequest | None = None
) -> VerificationPublic:
    """``POST /verify`` as a job, for long trails: poll ``GET /verifications/{id}`` for its progress."""
    body = body or VerifyRequest()
    if body.to_block is not None and body.to_block < body.from_block:
        raise Problem(422, "invalid_range", "to_block is before from_block")
    head = audit.head()
    end = head if body.to_block is None else min(body.to_block, head)
    jobs: VerificationJobs = request.app.state.verifications
    job = jobs.start(
        owner=auditor.address,
        from_block=body.from_block,
        to_block=end,
        total_events=audit.event_count(end),
        run=lambda progress: audit.verify(from_block=body.from_block, to_block=end, progress=progress),
        describe=lookup,
    )
    if job is None:
        raise Problem(429, "too_many_verifications", f"{jobs.max_running} verifications are running; try again later")
    return _job_public(job)


@router.get("/verifications/{job_id}", response_model=VerificationPublic)
def read_verification(
    request: Request, auditor: AuditorMember, job_id: Annotated[str, Path(max_length=64)]
) -> VerificationPublic:
    """A verification job's progress, and its report once done (only the auditor who started it)."""
    job = request.app.state.verifications.get(job_id)
    if job is None or job.owner != auditor.address:
        raise Problem(404, "verification_not_found", "no such verification of yours")
    return _job_public(job)


def _job_public(job: VerificationJob) -> VerificationPublic:
    return VerificationPublic(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        stage=job.stage,
        events=job.events,
        total_events=job.total_events,
        from_block=job.from_block,
        to_block=job.to_block,
        started_at=job.started_at,
        finished_at=job.finished_at,
        report=VerifyReport(**job.report) if job.report is not None else None,
        error=job.error,
    )


@router.get("/reports", responses={200: {"content": {"application/json": {}, "text/html": {}}}})
def report(
    auditor: AuditorMember,
    audit: AuditorDep,
    vault: VaultDep,
    subject: Annotated[Address | None, Query()] = None,
    department: Annotated[Address | None, Query(description="the grantee")] = None,
    from_time: Annotated[int | None, Query(ge=0, le=2**63)] = None,
    to_time: Annotated[int | None, Query(ge=0, le=2**63)] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
    verify: Annotated[bool, Query(description="include a verification of the whole chain")] = False,
) -> Response:
    """An auditor's report for a subject, a department or a period, as JSON or a readable HTML page."""
    from db.release_log import LogEntry

    from .. import reports

    with vault.store.session() as s:
        names = {p.address: p.name for p in s.scalars(select(MemberProfile)).all()}
    verification = audit.verify().as_dict() if verify else None
    built = reports.build(
        [LogEntry.parse(e) for e in vault.release_log()],
        names=names,
        subject=subject,
        department=department,
        from_time=from_time,
        to_time=to_time,
        verification=verification,
    )
    if format == "html":
        return HTMLResponse(reports.to_html(built))
    return JSONResponse(built.as_dict())


class CheckpointPublic(BaseModel):
    index: int
    tree_size: int
    root_hash: str
    anchored_at: int


@router.get("/checkpoints", response_model=list[CheckpointPublic])
def checkpoints(auditor: AuditorMember, ledger: LedgerDep) -> list[CheckpointPublic]:
    """Checkpoints of the release log anchored on chain (tree size, RFC 9162 root)."""
    return [
        CheckpointPublic(
            index=c.index, tree_size=c.tree_size, root_hash="0x" + c.root_hash.hex(), anchored_at=c.anchored_at
        )
        for c in ledger.checkpoints()
    ]


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    entry: str = Field(description="base64 of the exact leaf bytes")
    root_hash: str
    audit_path: list[str]


class ConsistencyProof(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


def _log(vault: VaultDep) -> list[bytes]:
    return vault.release_log()


@router.get("/proofs/inclusion", response_model=InclusionProof)
def inclusion(
    auditor: AuditorMember,
    vault: VaultDep,
    release_id: Annotated[Bytes32, Query()],
    tree_size: Annotated[int | None, Query(ge=1, le=2**63)] = None,
) -> InclusionProof:
    """RFC 9162 §2.1.3 inclusion proof of a release's log entry in the tree of ``tree_size`` entries."""
    with vault.store.session() as s:
        index = s.scalar(select(ReleaseLogRow.idx).where(ReleaseLogRow.release_id == release_id))
    if index is None:
        raise Problem(404, "release_not_found", "no logged release with this id")
    entries = _log(vault)
    size = len(entries) if tree_size is None else tree_size
    if not index < size <= len(entries):
        raise Problem(422, "invalid_tree_size", f"tree_size must be in ({index}, {len(entries)}]")
    log = merkle.MerkleLog.from_leaves(entries)
    return InclusionProof(
        leaf_index=int(index),
        tree_size=size,
        entry=base64.b64encode(entries[index]).decode(),
        root_hash="0x" + log.root(size).hex(),
        audit_path=["0x" + h.hex() for h in log.inclusion_proof(int(index), size)],
    )


@router.get("/proofs/consistency", response_model=ConsistencyProof)
def consistency(
    auditor: AuditorMember,
    vault: VaultDep,
    first: Annotated[int, Query(ge=1, le=2**63)],
    second: Annotated[int, Query(ge=1, le=2**63)],
) -> ConsistencyProof:
    """RFC 9162 §2.1.4 consistency proof between two tree sizes of the release log."""
    entries = _log(vault)
    if not first <= second <= len(entries):
        raise Problem(422, "invalid_tree_size", f"need 1 <= first <= second <= {len(entries)}")
    log = merkle.MerkleLog.from_leaves(entries)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root="0x" + log.root(first).hex(),
        second_root="0x" + log.root(second).hex(),
        proof=["0x" + h.hex() for h in log.consistency_proof(first, second)],
    )
