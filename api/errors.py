"""One table from domain errors to HTTP status and stable ``code``; RFC 9457 bodies."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from chain_client import errors as ce
from db.errors import DatabaseError
from db.store import StoreUnavailable
from vault import errors as ve

from .services import errors as se
from .workdays import CalendarUnknown

log = logging.getLogger("qcl.api")

PROBLEM_JSON = "application/problem+json"

#: Domain error -> (HTTP status, stable code). The most specific class wins.
ERROR_TABLE: dict[type[Exception], tuple[int, str]] = {
    # chain
    ce.ChainUnavailable: (503, "chain_unavailable"),
    ce.NotAuthorized: (403, "role_required"),
    ce.UnknownMember: (404, "member_not_found"),
    ce.AlreadyMember: (409, "member_exists"),
    ce.InvalidRoles: (422, "invalid_roles"),
    ce.InvalidHpkeKey: (422, "invalid_hpke_key"),
    ce.ZeroAddress: (422, "invalid_address"),
    ce.SuspensionUnchanged: (409, "suspension_unchanged"),
    ce.SelfLockout: (409, "self_lockout"),
    ce.ConflictingRoles: (422, "conflicting_roles"),
    ce.AuditorApprovalRequired: (422, "auditor_approval_required"),
    ce.InvalidApproval: (403, "approval_invalid"),
    ce.WalletProofRequired: (422, "wallet_proof_required"),
    ce.InvalidWalletProof: (403, "wallet_proof_invalid"),
    ce.TooManyAuditors: (422, "too_many_auditors"),
    ce.ResourceExists: (409, "resource_exists"),
    ce.UnknownResource: (404, "resource_not_found"),
    ce.InvalidSensitivity: (422, "invalid_sensitivity"),
    ce.InvalidProvider: (422, "invalid_provider"),
    ce.ReservedResourceId: (422, "reserved_resource"),
    ce.BatchTooLarge: (422, "batch_too_large"),
    ce.ExpiredDeadline: (403, "deadline_expired"),
    ce.SignatureMalleable: (403, "signature_malleable"),
    ce.SignatureInvalid: (403, "signature_invalid"),
    ce.NonceUsed: (409, "nonce_used"),
    ce.RequestUsed: (409, "request_used"),
    ce.InactiveMember: (403, "member_inactive"),
    ce.InvalidResources: (422, "invalid_resources"),
    ce.InvalidWindow: (422, "invalid_window"),
    ce.UnknownGrant: (404, "grant_not_found"),
    ce.GrantRevoked: (403, "grant_revoked"),
    ce.GrantPaused: (403, "grant_paused"),
    ce.GrantNotYetValid: (403, "grant_not_yet_valid"),
    ce.GrantExpired: (403, "grant_expired"),
    ce.GrantExhausted: (403, "grant_exhausted"),
    ce.ResourceNotGranted: (403, "resource_not_granted"),
    ce.NotGrantee: (403, "not_grantee"),
    ce.StaleSequence: (409, "stale_sequence"),
    ce.InsufficientGas: (503, "insufficient_gas"),
    ce.UnknownEmergency: (404, "emergency_not_found"),
    ce.EmergencyExists: (409, "emergency_exists"),
    ce.EmergencyCancelled: (409, "emergency_cancelled"),
    ce.TooManyApprovals: (409, "too_many_approvals"),
    ce.NotApprover: (403, "not_approver"),
    ce.AlreadyApproved: (409, "already_approved"),
    ce.EmergencyNotApproved: (403, "emergency_not_approved"),
    ce.EmergencyOutsideWindow: (403, "emergency_outside_window"),
    ce.EmergencyOutOfScope: (403, "emergency_out_of_scope"),
    ce.DocumentExists: (409, "document_exists"),
    ce.UnknownDocument: (404, "document_not_found"),
    ce.DocumentShredded: (410, "document_deleted"),
    ce.InvalidIssuer: (403, "invalid_issuer"),
    ce.InvalidCommitment: (422, "invalid_commitment"),
    ce.InvalidCheckpoint: (422, "invalid_checkpoint"),
    ce.RecordExists: (409, "record_exists"),
    ce.ContractRevert: (409, "contract_rejected"),
    ce.TransactionFailed: (502, "transaction_failed"),
    ce.ChainError: (503, "chain_error"),
    # vault
    ve.DocumentNotFound: (404, "document_not_found"),
    ve.NoCurrentDocument: (404, "document_not_found"),
    ve.DocumentDeleted: (410, "document_deleted"),
    ve.InvalidInput: (422, "invalid_input"),
    ve.DecryptionError: (500, "decryption_failed"),
    ve.KeyRingError: (503, "keyring_unavailable"),
    StoreUnavailable: (503, "database_unavailable"),
    ve.VaultError: (500, "vault_error"),
    # service clocks (SPEC §9.4, §9.5)
    CalendarUnknown: (503, "calendar_unknown"),
    # use cases (api/services)
    se.InvalidInput: (422, "invalid_input"),
    se.GrantNotVisible: (404, "grant_not_found"),
    se.ReleaseNotVisible: (404, "release_not_found"),
    se.NotGrantee: (403, "not_grantee"),
    se.RequestUsed: (409, "request_used"),
    se.ReleasePending: (503, "release_pending"),
    se.EmergencyNotVisible: (404, "emergency_not_found"),
    se.NotVisible: (404, "not_found"),
    se.RoleRequired: (403, "role_required"),
    se.MemberSuspended: (403, "member_suspended"),
    se.EmergencyOutOfScope: (403, "emergency_out_of_scope"),
    se.Forbidden: (403, "forbidden"),
    se.ReasonMismatch: (422, "reason_mismatch"),
    se.ServiceError: (422, "invalid_input"),
}

_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class Problem(Exception):
    """An error a router raises directly with its status and code."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def problem(status: int, code: str, detail: str, *, instance: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:qcl:problem:{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


#: What a caller is told when the database does not answer (never its address or driver message).
DATABASE_DOWN = "the database did not answer; try again later"
#: Driver errors that mean the database is unreachable or busy (a locked SQLite file, a refused or
#: dropped PostgreSQL connection, an exhausted connection pool), when they escape ``Store.session``.
DATABASE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def public_detail(exc: Exception) -> str:
    """The ``detail`` an API caller may read for a dependency failure: a chain node's or a
    database's address and the HTTP or database library's message stay in the logs."""
    if isinstance(exc, ce.ChainUnavailable):
        return exc.public
    if isinstance(exc, (DatabaseError, *DATABASE_ERRORS)):
        return DATABASE_DOWN
    return str(exc)


def lookup(exc: Exception) -> tuple[int, str] | None:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    if isinstance(exc, (DatabaseError, *DATABASE_ERRORS)):
        return 503, "database_unavailable"
    return None


def install(app: FastAPI) -> None:
    """Register the handlers once."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem(exc.status, exc.code, exc.detail, instance=request.url.path, **exc.extra)
        if "retry_after" in exc.extra:  # 429 rate_limited (RFC 9110 §10.2.3)
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return problem(422, "invalid_input", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # an unreadable body (e.g. not UTF-8): malformed input, SPEC §6.1
            return problem(
                422, "invalid_input", f"the request body could not be read: {exc.detail}", instance=request.url.path
            )
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), instance=request.url.path)

    @app.exception_handler(ce.ChainError)
    @app.exception_handler(ve.VaultError)
    @app.exception_handler(se.ServiceError)
    @app.exception_handler(CalendarUnknown)
    @app.exception_handler(DatabaseError)
    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, ve.ReleaseRefused):
            return problem(403, exc.code, str(exc), instance=request.url.path)
        status, code = lookup(exc) or (500, "internal_error")
        detail = public_detail(exc)
        if status >= 500:
            log.warning("%s on %s: %s", exc.__class__.__name__, request.url.path, exc)
            if isinstance(exc, ve.DecryptionError | ve.VaultError) and not isinstance(
                exc, StoreUnavailable | ve.KeyRingError
            ):
                detail = "the vault could not complete the operation; the error was logged"
        response = problem(status, code, detail, instance=request.url.path)
        if code in ("chain_unavailable", "database_unavailable"):
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(500, "internal_error", "the server failed; the error was logged", instance=request.url.path)
