"""Audit resources (SPEC §6, §7): trail, verification, checkpoints and RFC 9162 proofs. AUDITOR only."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from audit.log_tree import LogTree
from audit.trail import Auditor
from chain_client.indexer import Indexer
from db.models import MemberProfile, ReleaseLogRow

from ..background import VerificationJob, VerificationJobs, make_auditor
from ..deps import AuditorMember, LedgerDep, VaultDep
from ..errors import Problem
from ..schemas.page import Page
from ..types import Address, Bytes32, Limit, Offset
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)


def auditor_for(request: Request, ledger: LedgerDep, vault: VaultDep) -> Auditor:
    """The auditor of this deployment: over the index (brought up to date first) when the API
    runs the indexer, over RPC otherwise."""
    settings = request.app.state.settings
    return make_auditor(ledger=ledger, vault=vault, indexer=request.app.state.indexer, workers=settings.verify_workers)


AuditorDep = Annotated[Auditor, Depends(auditor_for)]


class TrailEvent(BaseModel):
    event: str
    block_number: int
    log_index: int
    tx_hash: str
    args: dict[str, Any]


@router.get("/trail", response_model=Page[TrailEvent])
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
) -> Page[TrailEvent]:
    """Grants, revocations, pauses, releases and emergencies, in chain order."""
    events = audit.trail(
        subject=subject,
        grantee=grantee,
        resource=bytes.fromhex(resource[2:]) if resource else None,
        from_block=from_block,
        to_block=to_block,
    )
    return Page[TrailEvent](
        items=[TrailEvent(**e) for e in events[offset : offset + limit]], offset=offset, limit=limit, total=len(events)
    )


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


class RelocationPublic(BaseModel):
    tx_hash: str
    log_index: int
    logged_block: int
    chain_block: int


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
    relocated: list[RelocationPublic] = Field(
        default_factory=list,
        description="releases the log holds at another block than the chain, in the same transaction with the "
        "same fields: recorded again after their first block was lost (a reorg); not violations",
    )


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
    status: Literal["queued", "running", "done", "failed"]
    stage: str = Field(description="events (replaying the chain), log, calldata, signatures")
    events: int = Field(description="events replayed so far")
    total_events: int | None = Field(description="events the replay reads (null over RPC)")
    from_block: int
    to_block: int
    started_at: float | None
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
        owner=auditor.address, from_block=body.from_block, to_block=end, total_events=audit.event_count(end)
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
    tx_hash: str = Field(description="the anchoring transaction (SPEC §6, §9.7)")
    block_number: int


@router.get("/checkpoints", response_model=list[CheckpointPublic])
def checkpoints(request: Request, auditor: AuditorMember, ledger: LedgerDep) -> list[CheckpointPublic]:
    """Checkpoints of the release log anchored on chain (tree size, RFC 9162 root), each with its
    transaction and block: one query of the index (brought up to date first), or one
    ``eth_getLogs`` when the API runs no indexer."""
    indexer: Indexer | None = request.app.state.indexer
    if indexer is not None:
        indexer.sync()
        found = []
        for event in indexer.events(event="CheckpointAnchored"):
            block = indexer.block(event.block_number)
            found.append(
                CheckpointPublic(
                    index=int(event.args["index"]),
                    tree_size=int(event.args["treeSize"]),
                    root_hash=str(event.args["rootHash"]),
                    anchored_at=block.timestamp if block is not None else 0,
                    tx_hash=event.tx_hash,
                    block_number=event.block_number,
                )
            )
        return found
    return [
        CheckpointPublic(
            index=int(e.args.index),
            tree_size=int(e.args.treeSize),
            root_hash="0x" + bytes(e.args.rootHash).hex(),
            anchored_at=ledger.block_timestamp(int(e.blockNumber)),
            tx_hash="0x" + bytes(e.transactionHash).hex(),
            block_number=int(e.blockNumber),
        )
        for e in ledger.events("CheckpointAnchored", from_block=ledger.deployment.deploy_block)
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


def _tree(request: Request) -> LogTree:
    tree: LogTree = request.app.state.log_tree
    return tree


@router.get("/proofs/inclusion", response_model=InclusionProof)
def inclusion(
    request: Request,
    auditor: AuditorMember,
    vault: VaultDep,
    release_id: Annotated[Bytes32, Query()],
    tree_size: Annotated[int | None, Query(ge=1, le=2**63)] = None,
) -> InclusionProof:
    """RFC 9162 §2.1.3 inclusion proof of a release's log entry in the tree of ``tree_size`` entries
    (from the process's cached tree: O(log² n) hashes, the new entries read once)."""
    with vault.store.session() as s:
        index = s.scalar(select(ReleaseLogRow.idx).where(ReleaseLogRow.release_id == release_id))
    if index is None:
        raise Problem(404, "release_not_found", "no logged release with this id")
    tree = _tree(request)
    logged = tree.size()
    size = logged if tree_size is None else tree_size
    if not index < size <= logged:
        raise Problem(422, "invalid_tree_size", f"tree_size must be in ({index}, {logged}]")
    root, path = tree.inclusion_proof(int(index), size)
    (entry,) = vault.release_log(start=int(index), end=int(index) + 1)
    return InclusionProof(
        leaf_index=int(index),
        tree_size=size,
        entry=base64.b64encode(entry).decode(),
        root_hash="0x" + root.hex(),
        audit_path=["0x" + h.hex() for h in path],
    )


@router.get("/proofs/consistency", response_model=ConsistencyProof)
def consistency(
    request: Request,
    auditor: AuditorMember,
    first: Annotated[int, Query(ge=1, le=2**63)],
    second: Annotated[int, Query(ge=1, le=2**63)],
) -> ConsistencyProof:
    """RFC 9162 §2.1.4 consistency proof between two tree sizes of the release log."""
    tree = _tree(request)
    logged = tree.size()
    if not first <= second <= logged:
        raise Problem(422, "invalid_tree_size", f"need 1 <= first <= second <= {logged}")
    first_root, second_root, proof = tree.consistency_proof(first, second)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root="0x" + first_root.hex(),
        second_root="0x" + second_root.hex(),
        proof=["0x" + h.hex() for h in proof],
    )
