"""BOLA / function-level authorization matrix over every operation of the OpenAPI document.

Each row of ``MATRIX`` is one operation (method and path template of ``/openapi.json``); each
column one caller:

* ``anonymous`` (no ``Authorization`` header) and ``invalid_token`` (a well-formed JWT naming the
  ADMIN but signed with another key) must get 401 on everything but the public operations;
* ``stranger``, a non-member: it cannot log in (``POST /v1/auth/token`` refuses it, 403
  ``not_a_member``), so its column uses a token minted with the service's own key for its
  address, which proves that membership is checked at every call (SPEC §1: "an account that is
  not a member is rejected everywhere");
* the six members of the ``platform`` fixture: ``admin``, ``provider``, ``citizen`` (SUBJECT),
  ``dept`` and ``other_dept`` (CONSUMERs) and ``auditor``.

The objects are the citizen's: a document issued by the provider, a grant citizen -> dept, an
access request dept -> citizen, an emergency proposed by admin and approved by auditor (listing
dept), and a release by dept. A cell expects the exact status and problem ``code``: 401 when not
logged in, 403 for a role that may not call the operation at all, 404 (or the 403 the SPEC names)
for another party's object, and 2xx for the rightful caller. Bodies are valid for the rightful
caller (real EIP-712 signatures), so a refusal is about authorization, not validation: members
sign their own messages (what an attacker would do), the columns without a key relay the
rightful signer's. Every cell that could change state works on a fresh object of its own, so
one cell never depends on another and a missing check damages only its own cell.

``test_every_operation_has_a_row`` fails when an operation of the OpenAPI document has no row
(or a row names no operation), so no endpoint can be added without deciding who may call it.
The world is the ``platform`` fixture's set-up (``tests/api/conftest.py``), built once for the
module on a fresh deployment. ``KNOWN_BUGS`` marks a cell strict-xfail for an authorization bug
that was reported; none was found when this matrix was written.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from api.auth import AUDIENCE, jwt_secret
from api.settings import Settings
from chain_client import CompilationResult, Node, eip712
from chain_client.ids import new_nonce, purpose_id, resource_id
from qcl_client import QclClient, open_sealed
from tests.api.conftest import Platform, build_platform, database_url
from tests.conftest import deploy_fresh

pytestmark = pytest.mark.both_databases  # SQLite, then PostgreSQL (tests/api/conftest.py)

CARD = b"Resident identity card of Zhang San, 370102199001011234"
PURPOSE = "loan-application"
PROBLEM_JSON = "application/problem+json"

MEMBERS = ("admin", "provider", "citizen", "dept", "other_dept", "auditor")
CALLERS = ("anonymous", "invalid_token", "stranger", *MEMBERS)
#: The salt of the matrix's emergency reasons (SPEC §9.8: reason = keccak256(salt || utf8(text))).
REASON_SALT = secrets.token_bytes(32)
REASON = "Gas leak, Lixia district"
PUBLIC = {("GET", "/health"), ("GET", "/v1/chain"), ("POST", "/v1/auth/challenge"), ("POST", "/v1/auth/token")}


# ---- the world -------------------------------------------------------------------------------------


@dataclass
class World:
    p: Platform
    doc_id: str
    grant_id: str
    request_id: str
    emergency_id: str
    release_id: str
    stranger: Any  # LocalAccount
    second_citizen: QclClient
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def member(self, name: str) -> QclClient:
        client: QclClient = getattr(self.p, name)
        return client


def _build_platform(deployed: Any, tmp_path: Path, database: str | None = None) -> Platform:
    """The ``platform`` fixture's world, built once per module and database (a fresh deployment per
    cell would take minutes)."""
    return build_platform(deployed, tmp_path, database_url=database)


def _token(settings: Settings, address: str, secret: bytes) -> str:
    now = int(time.time())
    claims = {
        "sub": address,
        "aud": AUDIENCE,
        "iss": settings.siwe_domain,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": secrets.token_hex(16),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def world(
    anvil: Node,
    compiled: CompilationResult,
    tmp_path_factory: pytest.TempPathFactory,
    api_database: str,
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    database = database_url(request, api_database)
    p = _build_platform(deploy_fresh(anvil, compiled), tmp_path_factory.mktemp("matrix"), database)
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], PURPOSE)["grant_id"]  # unlimited uses
    request = p.dept.request_access(p.citizen.address, ["id_card"], PURPOSE, note="matrix")
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response, Licheng district")
    emergency_id = p.admin.propose_emergency(message, "Flood response, Licheng district")["emergency_id"]
    assert p.auditor.approve_emergency(message)["active"] is True
    assert p.dept.release(grant_id, "id_card", p.dept_key).content == CARD
    release_id = p.citizen.access_log(p.citizen.address)[0]["release_id"]

    second_citizen = QclClient(http=p.http, account=Account.create())
    p.admin.onboard(second_citizen.address, ["SUBJECT"], "Citizen Li")
    second_citizen.login()

    settings: Settings = p.http.app.state.settings  # type: ignore[attr-defined]
    stranger = Account.create()
    headers = {
        "anonymous": {},
        "invalid_token": {"Authorization": f"Bearer {_token(settings, p.admin.address, b'not the service key' * 3)}"},
        "stranger": {"Authorization": f"Bearer {_token(settings, stranger.address, jwt_secret(settings))}"},
    }
    for name in MEMBERS:
        headers[name] = {"Authorization": f"Bearer {getattr(p, name).token}"}
    yield World(
        p=p,
        doc_id=doc["document_id"],
        grant_id=grant_id,
        request_id=request["id"],
        emergency_id=emergency_id,
        release_id=release_id,
        stranger=stranger,
        second_citizen=second_citizen,
        headers=headers,
    )
    p.close()


# ---- signing and fresh objects -----------------------------------------------------------------------


def _jsonable(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in message.items():
        if isinstance(value, bytes):
            out[key] = "0x" + value.hex()
        elif isinstance(value, list):
            out[key] = ["0x" + v.hex() if isinstance(v, bytes) else v for v in value]
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 2**53:
            out[key] = str(value)
        else:
            out[key] = value
    return out


def signed(signer: QclClient, primary: str, message: dict[str, Any]) -> dict[str, Any]:
    """``{"message", "signature"}`` with ``signer``'s EIP-712 signature (SPEC §6.1)."""
    signature = eip712.sign(signer.domain(), primary, message, signer.account.key)
    return {"message": _jsonable(message), "signature": "0x" + signature.hex()}


def grant_message(w: World, *, resources: tuple[str, ...] = ("id_card",), grantee: str | None = None) -> dict[str, Any]:
    now = int(time.time())
    return {
        "subject": w.p.citizen.address,
        "grantee": grantee or w.p.dept.address,
        "resources": [resource_id(code) for code in resources],
        "purpose": purpose_id(PURPOSE),
        "validFrom": now - 60,
        "validUntil": now + 30 * 86400,
        "maxUses": 0,
        "nonce": new_nonce(),
        "deadline": now + 600,
    }


def fresh_grant(w: World) -> str:
    return str(w.p.citizen.grant(w.p.dept.address, ["id_card"], PURPOSE)["grant_id"])


def fresh_document(w: World) -> str:
    return str(w.p.provider.store_document(w.p.citizen.address, "tax_record", b"tax record 2025")["document_id"])


def fresh_request(w: World) -> dict[str, Any]:
    return w.p.dept.request_access(w.p.citizen.address, ["id_card"], PURPOSE)


def fresh_member(w: World) -> str:
    address = str(Account.create().address)
    w.p.admin.onboard(address, ["SUBJECT"], "Throwaway citizen")
    return address


def emergency_message(w: World) -> dict[str, Any]:
    now = int(time.time())
    return {
        "emergencyId": secrets.token_bytes(32),
        "resources": [resource_id("id_card")],
        "consumers": [w.p.dept.address],
        "validFrom": now - 60,
        "validUntil": now + 3600,
        "reason": keccak(REASON_SALT + REASON.encode()),
        "deadline": now + 3600,
    }


# ---- the matrix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None


@dataclass(frozen=True)
class Ctx:
    """Who calls (``caller``) and whose key signs the body (``signer``)."""

    caller: str
    signer: QclClient


Expect = tuple[int, str | None]  # status, problem code (None for a 2xx)
OK: Expect = (200, None)
CREATED: Expect = (201, None)
ACCEPTED: Expect = (202, None)
ROLE: Expect = (403, "role_required")
NOT_LOGGED_IN: Expect = (401, "not_authenticated")
BAD_TOKEN: Expect = (401, "token_invalid")
NOT_MEMBER: Expect = (403, "not_a_member")


@dataclass(frozen=True)
class Row:
    build: Callable[[World, Ctx], Call]
    members: dict[str, Expect]
    #: the member whose key signs the body for the callers without a key (and for every caller
    #: when ``self_signed`` is false)
    rightful: str = "citizen"
    #: members sign the body with their own key (the attack); else all relay the rightful body
    self_signed: bool = False
    anonymous: Expect = NOT_LOGGED_IN
    invalid_token: Expect = BAD_TOKEN
    stranger: Expect = NOT_MEMBER
    #: extra assertion on a 2xx body: (world, caller, json) -> None
    check: Callable[[World, str, Any], None] | None = None

    def expect(self, caller: str) -> Expect:
        if caller in MEMBERS:
            return self.members[caller]
        expected: Expect = getattr(self, caller)
        return expected


def every(expect: Expect) -> dict[str, Expect]:
    return dict.fromkeys(MEMBERS, expect)


def only(allowed: dict[str, Expect], otherwise: Expect = ROLE) -> dict[str, Expect]:
    return {name: allowed.get(name, otherwise) for name in MEMBERS}


# -- builders (one per operation)


def b_health(w: World, c: Ctx) -> Call:
    return Call("GET", "/health")


def b_chain(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/chain")


def b_challenge(w: World, c: Ctx) -> Call:
    address = w.member(c.caller).address if c.caller in MEMBERS else w.stranger.address
    return Call("POST", "/v1/auth/challenge", json={"address": address})


def b_token(w: World, c: Ctx) -> Call:
    """Each member logs in with its own key; the stranger with its own (refused); the columns
    without an account log in as the citizen (the endpoint needs no bearer token)."""
    account = w.member(c.caller).account if c.caller in MEMBERS else w.p.citizen.account
    if c.caller == "stranger":
        account = w.stranger
    challenge = w.p.http.post("/v1/auth/challenge", json={"address": account.address}).json()
    signature = Account.sign_message(encode_defunct(text=challenge["message"]), account.key).signature
    return Call("POST", "/v1/auth/token", json={"message": challenge["message"], "signature": "0x" + signature.hex()})


def b_members_create(w: World, c: Ctx) -> Call:
    return Call(
        "POST", "/v1/members", json={"address": Account.create().address, "roles": ["SUBJECT"], "name": "New citizen"}
    )


def b_members_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/members/{w.p.citizen.address}")


def b_members_suspend(w: World, c: Ctx) -> Call:
    return Call("POST", f"/v1/members/{fresh_member(w)}/suspend", json={"suspended": True})


def b_catalog_create(w: World, c: Ctx) -> Call:
    code = f"res_{secrets.token_hex(6)}"
    return Call(
        "POST",
        "/v1/catalog",
        json={"code": code, "name": "A new resource", "provider": w.p.provider.address, "sensitivity": 2},
    )


def b_catalog_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/catalog")


def b_documents_store(w: World, c: Ctx) -> Call:
    content = base64.b64encode(b"tax record of Zhang San, 2025").decode()
    return Call(
        "POST", "/v1/documents", json={"subject": w.p.citizen.address, "resource": "tax_record", "content": content}
    )


def b_documents_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/documents")


def b_documents_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/documents/{w.doc_id}")


def b_documents_delete(w: World, c: Ctx) -> Call:
    return Call("DELETE", f"/v1/documents/{fresh_document(w)}")


def b_grants_create(w: World, c: Ctx) -> Call:
    return Call("POST", "/v1/grants", json=signed(c.signer, "Grant", grant_message(w)))


def b_grants_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/grants", params={"subject": w.p.citizen.address, "grantee": w.p.dept.address})


def b_grants_revoke(w: World, c: Ctx) -> Call:
    grant_id = fresh_grant(w)
    message = {"grantId": bytes.fromhex(grant_id[2:]), "nonce": new_nonce(), "deadline": int(time.time()) + 600}
    return Call("POST", f"/v1/grants/{grant_id}/revoke", json=signed(c.signer, "Revoke", message))


def b_grants_pause(w: World, c: Ctx) -> Call:
    grant_id = fresh_grant(w)
    message = {
        "grantId": bytes.fromhex(grant_id[2:]),
        "paused": True,
        "sequence": 1,
        "nonce": new_nonce(),
        "deadline": int(time.time()) + 600,
    }
    return Call("POST", f"/v1/grants/{grant_id}/pause", json=signed(c.signer, "SetPaused", message))


def b_grants_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/grants/{w.grant_id}")


def b_requests_create(w: World, c: Ctx) -> Call:
    body = {"subject": w.p.citizen.address, "resources": ["id_card"], "purpose": PURPOSE, "valid_for": 86400}
    return Call("POST", "/v1/access-requests", json=body)


def b_requests_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/access-requests")


def b_requests_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/access-requests/{w.request_id}")


def b_requests_answer(w: World, c: Ctx) -> Call:
    """A fresh pending request dept -> citizen, answered with the citizen's signed Grant."""
    request = fresh_request(w)
    grant = signed(w.p.citizen, "Grant", grant_message(w))
    return Call("POST", f"/v1/access-requests/{request['id']}/answer", json={"decision": "grant", "grant": grant})


def b_release(w: World, c: Ctx) -> Call:
    message = {
        "grantId": bytes.fromhex(w.grant_id[2:]),
        "resource": resource_id("id_card"),
        "requestId": secrets.token_bytes(32),
        "deadline": int(time.time()) + 600,
    }
    return Call("POST", "/v1/releases", json=signed(c.signer, "ReleaseRequest", message))


def b_release_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/releases/{w.release_id}")


def c_release_read(w: World, caller: str, body: Any) -> None:
    assert body["release_id"] == w.release_id and body["document"]["document_id"] == w.doc_id
    sealed = base64.b64decode(body["sealed"])
    assert open_sealed(sealed, w.p.dept_key, bytes.fromhex(w.grant_id[2:]), _request_of(w, body)) == CARD


def _request_of(w: World, body: Any) -> bytes:
    entry = next(e for e in w.p.citizen.access_log(w.p.citizen.address) if e["release_id"] == body["release_id"])
    return bytes.fromhex(entry["request_id"][2:])


def b_access_log(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/subjects/{w.p.citizen.address}/access-log")


def b_emergency_propose(w: World, c: Ctx) -> Call:
    body = signed(c.signer, "Emergency", emergency_message(w)) | {
        "reason_text": REASON,
        "reason_salt": "0x" + REASON_SALT.hex(),
    }
    return Call("POST", "/v1/emergencies", json=body)


def b_emergency_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/emergencies")


def b_emergency_read(w: World, c: Ctx) -> Call:
    """A fresh proposal naming dept, that released nobody's data (subjects see only those that did)."""
    message = emergency_message(w)
    w.p.admin.propose_emergency(message, REASON, reason_salt=REASON_SALT)
    return Call("GET", f"/v1/emergencies/0x{message['emergencyId'].hex()}")


def b_emergency_approve(w: World, c: Ctx) -> Call:
    """A fresh proposal by the admin (by the auditor when the admin is the one approving)."""
    message = emergency_message(w)
    proposer = w.p.auditor if c.caller == "admin" else w.p.admin
    proposer.propose_emergency(message, REASON, reason_salt=REASON_SALT)
    return Call(
        "POST", f"/v1/emergencies/0x{message['emergencyId'].hex()}/approve", json=signed(c.signer, "Emergency", message)
    )


def b_emergency_cancel(w: World, c: Ctx) -> Call:
    """A fresh proposal by the admin, cancelled with the caller's own EmergencyCancel (SPEC §9.8)."""
    message = emergency_message(w)
    w.p.admin.propose_emergency(message, REASON, reason_salt=REASON_SALT)
    cancel = {"emergencyId": message["emergencyId"], "deadline": int(time.time()) + 600}
    return Call(
        "POST",
        f"/v1/emergencies/0x{message['emergencyId'].hex()}/cancel",
        json=signed(c.signer, "EmergencyCancel", cancel),
    )


def b_emergency_release(w: World, c: Ctx) -> Call:
    message = {
        "emergencyId": bytes.fromhex(w.emergency_id[2:]),
        "subject": w.p.citizen.address,
        "resource": resource_id("id_card"),
        "requestId": secrets.token_bytes(32),
        "deadline": int(time.time()) + 600,
    }
    return Call(
        "POST", f"/v1/emergencies/{w.emergency_id}/releases", json=signed(c.signer, "EmergencyReleaseRequest", message)
    )


def b_trail(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/audit/trail", params={"subject": w.p.citizen.address})


def b_verify(w: World, c: Ctx) -> Call:
    return Call("POST", "/v1/audit/verify", json={})


def b_verification_start(w: World, c: Ctx) -> Call:
    _finish_verifications(w)  # at most two run at once
    return Call("POST", "/v1/audit/verifications", json={})


def b_verification_read(w: World, c: Ctx) -> Call:
    _finish_verifications(w)
    job = w.p.auditor.call("POST", "/v1/audit/verifications", json={})
    return Call("GET", f"/v1/audit/verifications/{job['id']}")


def _finish_verifications(w: World) -> None:
    from sqlalchemy import func, select

    from db.models import VerificationJobRow

    deadline = time.time() + 30
    while time.time() < deadline:
        with w.p.vault.store.session() as s:
            busy = s.scalar(
                select(func.count())
                .select_from(VerificationJobRow)
                .where(VerificationJobRow.status.in_(("queued", "running")))
            )
        if not busy:
            return
        time.sleep(0.02)


def b_reports(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/audit/reports", params={"subject": w.p.citizen.address})


def b_checkpoints(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/audit/checkpoints")


def b_inclusion(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/audit/proofs/inclusion", params={"release_id": w.release_id})


def b_consistency(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/audit/proofs/consistency", params={"first": "1", "second": "1"})


# -- builders of the rights and service clocks (SPEC §9.2-9.5)

#: Objects shared by the read-only cells of the rights rows, made on first use (per world: the
#: SQLite and the PostgreSQL worlds each have their own).
_SHARED: dict[tuple[str, str], str] = {}


def fresh_correction(w: World) -> str:
    body = {"document_id": fresh_document(w), "claim": "wrong district"}
    return str(w.p.citizen.call("POST", "/v1/corrections", json=body)["correction_id"])


def fresh_demand(w: World) -> str:
    body = {"provider": w.p.provider.address, "title": "Water meter readings", "description": "monthly"}
    return str(w.p.dept.call("POST", "/v1/demands", json=body)["demand_id"])


def shared(w: World, name: str, make: Callable[[World], str]) -> str:
    key = (w.p.vault.store.url, name)
    if key not in _SHARED:
        _SHARED[key] = make(w)
    return _SHARED[key]


def b_corrections_open(w: World, c: Ctx) -> Call:
    return Call("POST", "/v1/corrections", json={"document_id": fresh_document(w), "claim": "wrong district"})


def b_corrections_list(w: World, c: Ctx) -> Call:
    shared(w, "correction", fresh_correction)
    return Call("GET", "/v1/corrections")


def b_corrections_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/corrections/{shared(w, 'correction', fresh_correction)}")


def b_corrections_resolve(w: World, c: Ctx) -> Call:
    body = {"outcome": "rejected", "reason": "matches the register"}
    return Call("POST", f"/v1/corrections/{fresh_correction(w)}/resolve", json=body)


def b_data_quality(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/reports/data-quality", params={"provider": w.p.provider.address})


def b_demands_create(w: World, c: Ctx) -> Call:
    body = {"provider": w.p.provider.address, "title": "Water meter readings", "description": "monthly"}
    return Call("POST", "/v1/demands", json=body)


def b_demands_list(w: World, c: Ctx) -> Call:
    shared(w, "demand", fresh_demand)
    return Call("GET", "/v1/demands")


def b_demands_read(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/demands/{shared(w, 'demand', fresh_demand)}")


def b_demands_confirm(w: World, c: Ctx) -> Call:
    return Call("POST", f"/v1/demands/{fresh_demand(w)}/confirm")


def b_demands_refuse(w: World, c: Ctx) -> Call:
    return Call("POST", f"/v1/demands/{fresh_demand(w)}/refuse", json={"reason": "not collected"})


def b_demands_publish(w: World, c: Ctx) -> Call:
    return Call("POST", f"/v1/demands/{fresh_demand(w)}/publish", json={"code": "tax_record"})


def b_purposes_create(w: World, c: Ctx) -> Call:
    body = {"code": f"purpose-{secrets.token_hex(4)}", "name_zh": "用途", "name_en": "A purpose", "legal_basis": "law"}
    return Call("POST", "/v1/purposes", json=body)


def b_purposes_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/purposes")


def b_requests_withdraw(w: World, c: Ctx) -> Call:
    return Call("POST", f"/v1/access-requests/{fresh_request(w)['id']}/withdraw")


# -- builders of notifications (SPEC §9.1)

HOOK_URL = "http://127.0.0.1:9/hook"  # never called: no deliverer runs in the matrix


def fresh_webhook(w: World) -> str:
    return str(w.p.dept.call("POST", "/v1/webhooks", json={"url": HOOK_URL, "types": []})["webhook_id"])


def b_events_list(w: World, c: Ctx) -> Call:
    return Call("GET", "/v1/events", params={"after": "0"})


def b_webhooks_create(w: World, c: Ctx) -> Call:
    return Call("POST", "/v1/webhooks", json={"url": HOOK_URL, "types": ["grant.revoked"]})


def b_webhooks_list(w: World, c: Ctx) -> Call:
    shared(w, "webhook", fresh_webhook)
    return Call("GET", "/v1/webhooks")


def b_webhooks_delete(w: World, c: Ctx) -> Call:
    return Call("DELETE", f"/v1/webhooks/{fresh_webhook(w)}")


def b_webhooks_deliveries(w: World, c: Ctx) -> Call:
    return Call("GET", f"/v1/webhooks/{shared(w, 'webhook', fresh_webhook)}/deliveries")


def c_webhooks_list(w: World, caller: str, body: Any) -> None:
    ids = {h["webhook_id"] for h in body["items"]}
    assert (_SHARED[(w.p.vault.store.url, "webhook")] in ids) == (caller == "dept"), ids


def c_events_list(w: World, caller: str, body: Any) -> None:
    sequences = [e["sequence"] for e in body["items"]]
    assert sequences == list(range(1, len(sequences) + 1)), sequences


def c_corrections_list(w: World, caller: str, body: Any) -> None:
    ids = {i["correction_id"] for i in body["items"]}
    assert (_SHARED[(w.p.vault.store.url, "correction")] in ids) == (
        caller in ("citizen", "provider", "admin", "auditor")
    ), ids


def c_demands_list(w: World, caller: str, body: Any) -> None:
    ids = {i["demand_id"] for i in body["items"]}
    assert (_SHARED[(w.p.vault.store.url, "demand")] in ids) == (caller in ("dept", "provider", "admin", "auditor")), (
        ids
    )


# -- checks of 2xx bodies: a listing shows a caller only what is theirs


def c_documents_list(w: World, caller: str, body: Any) -> None:
    ids = {d["document_id"] for d in body["items"]}
    assert (w.doc_id in ids) == (caller == "citizen"), ids


def c_requests_list(w: World, caller: str, body: Any) -> None:
    ids = {r["id"] for r in body["items"]}
    assert (w.request_id in ids) == (caller in ("citizen", "dept", "auditor")), ids


def c_emergency_list(w: World, caller: str, body: Any) -> None:
    ids = {e["emergency_id"] for e in body["items"]}
    assert (w.emergency_id in ids) == (caller in ("admin", "auditor", "dept")), ids


def c_grants_list(w: World, caller: str, body: Any) -> None:
    assert w.grant_id in {g["grant_id"] for g in body["items"]}


def c_grant_read(w: World, caller: str, body: Any) -> None:
    assert (body["grant_id"], body["status"], body["pause_sequence"]) == (w.grant_id, "active", 0), body


def c_access_log(w: World, caller: str, body: Any) -> None:
    assert w.release_id in {e["release_id"] for e in body["items"]}


PUBLIC_ROW = {"anonymous": OK, "invalid_token": OK, "stranger": OK}

MATRIX: dict[tuple[str, str], Row] = {
    # public (SPEC §1, §5): challenge for anyone, a token for members only
    ("GET", "/health"): Row(b_health, every(OK), **PUBLIC_ROW),  # type: ignore[arg-type]
    ("GET", "/v1/chain"): Row(b_chain, every(OK), **PUBLIC_ROW),  # type: ignore[arg-type]
    ("POST", "/v1/auth/challenge"): Row(b_challenge, every(OK), **PUBLIC_ROW),  # type: ignore[arg-type]
    ("POST", "/v1/auth/token"): Row(b_token, every(OK), anonymous=OK, invalid_token=OK, stranger=NOT_MEMBER),
    # members: ADMIN writes, any member reads
    ("POST", "/v1/members"): Row(b_members_create, only({"admin": CREATED})),
    ("GET", "/v1/members/{address}"): Row(b_members_read, every(OK)),
    ("POST", "/v1/members/{address}/suspend"): Row(b_members_suspend, only({"admin": OK})),
    # catalog: ADMIN registers, any member lists
    ("POST", "/v1/catalog"): Row(b_catalog_create, only({"admin": CREATED})),
    ("GET", "/v1/catalog"): Row(b_catalog_list, every(OK)),
    # documents: the subject (own vault) or the PROVIDER stores; only the subject reads/shreds
    ("POST", "/v1/documents"): Row(b_documents_store, only({"provider": CREATED, "citizen": CREATED})),
    ("GET", "/v1/documents"): Row(b_documents_list, every(OK), check=c_documents_list),
    ("GET", "/v1/documents/{document_id}"): Row(b_documents_read, only({"citizen": OK}, (404, "document_not_found"))),
    ("DELETE", "/v1/documents/{document_id}"): Row(
        b_documents_delete, only({"citizen": OK}, (404, "document_not_found"))
    ),
    # grants: only the subject's signature counts (each member signs for itself here)
    ("POST", "/v1/grants"): Row(
        b_grants_create, only({"citizen": CREATED}, (403, "signature_invalid")), self_signed=True
    ),
    ("GET", "/v1/grants"): Row(
        b_grants_list,
        only({"citizen": OK, "dept": OK, "auditor": OK}, (403, "forbidden")),
        check=c_grants_list,
    ),
    ("GET", "/v1/grants/{grant_id}"): Row(
        b_grants_read, only({"citizen": OK, "dept": OK, "auditor": OK}, (404, "grant_not_found")), check=c_grant_read
    ),
    ("POST", "/v1/grants/{grant_id}/revoke"): Row(
        b_grants_revoke, only({"citizen": OK}, (403, "signature_invalid")), self_signed=True
    ),
    ("POST", "/v1/grants/{grant_id}/pause"): Row(
        b_grants_pause, only({"citizen": OK}, (403, "signature_invalid")), self_signed=True
    ),
    # access requests: CONSUMERs ask; the subject sees and answers; the parties (and auditors) read
    ("POST", "/v1/access-requests"): Row(b_requests_create, only({"dept": CREATED, "other_dept": CREATED})),
    ("GET", "/v1/access-requests"): Row(b_requests_list, every(OK), check=c_requests_list),
    ("GET", "/v1/access-requests/{request_id}"): Row(
        b_requests_read,
        only({"citizen": OK, "dept": OK, "auditor": OK}, (404, "access_request_not_found")),
    ),
    ("POST", "/v1/access-requests/{request_id}/answer"): Row(
        b_requests_answer,
        only(
            {"citizen": OK, "dept": (403, "not_subject"), "auditor": (403, "not_subject")},
            (404, "access_request_not_found"),
        ),
    ),
    # releases: the grantee CONSUMER only
    ("POST", "/v1/releases"): Row(
        b_release,
        only({"dept": CREATED, "other_dept": (403, "not_grantee")}),
        rightful="dept",
        self_signed=True,
    ),
    ("GET", "/v1/releases/{release_id}"): Row(
        b_release_read,
        only({"dept": OK, "other_dept": (404, "release_not_found")}),
        check=c_release_read,
    ),
    ("GET", "/v1/subjects/{address}/access-log"): Row(
        b_access_log, only({"citizen": OK, "auditor": OK}, (403, "forbidden")), check=c_access_log
    ),
    # emergencies: ADMIN and AUDITOR sign; listed CONSUMERs release; consumers list their own
    ("POST", "/v1/emergencies"): Row(
        b_emergency_propose, only({"admin": CREATED, "auditor": CREATED}), rightful="admin", self_signed=True
    ),
    ("GET", "/v1/emergencies"): Row(
        b_emergency_list,
        only({"admin": OK, "auditor": OK, "dept": OK, "other_dept": OK}),
        check=c_emergency_list,
    ),
    ("GET", "/v1/emergencies/{emergency_id}"): Row(
        b_emergency_read, only({"admin": OK, "auditor": OK, "dept": OK}, (404, "emergency_not_found"))
    ),
    ("POST", "/v1/emergencies/{emergency_id}/approve"): Row(
        b_emergency_approve, only({"admin": OK, "auditor": OK}), rightful="auditor", self_signed=True
    ),
    ("POST", "/v1/emergencies/{emergency_id}/cancel"): Row(
        b_emergency_cancel, only({"admin": OK, "auditor": OK}), rightful="auditor", self_signed=True
    ),
    ("POST", "/v1/emergencies/{emergency_id}/releases"): Row(
        b_emergency_release,
        only({"dept": CREATED, "other_dept": (403, "emergency_out_of_scope")}),
        rightful="dept",
        self_signed=True,
    ),
    # audit: AUDITOR only
    ("GET", "/v1/audit/trail"): Row(b_trail, only({"auditor": OK})),
    ("POST", "/v1/audit/verify"): Row(b_verify, only({"auditor": OK})),
    ("POST", "/v1/audit/verifications"): Row(b_verification_start, only({"auditor": ACCEPTED})),
    ("GET", "/v1/audit/verifications/{job_id}"): Row(b_verification_read, only({"auditor": OK})),
    ("GET", "/v1/audit/reports"): Row(b_reports, only({"auditor": OK})),
    ("GET", "/v1/audit/checkpoints"): Row(b_checkpoints, only({"auditor": OK})),
    ("GET", "/v1/audit/proofs/inclusion"): Row(b_inclusion, only({"auditor": OK})),
    ("GET", "/v1/audit/proofs/consistency"): Row(b_consistency, only({"auditor": OK})),
    # rights and service clocks (SPEC §9.2-9.5): the parties see and answer; ADMIN/AUDITOR see all
    ("POST", "/v1/access-requests/{request_id}/withdraw"): Row(
        b_requests_withdraw,
        only(
            {"dept": OK, "citizen": (403, "not_consumer"), "auditor": (403, "not_consumer")},
            (404, "access_request_not_found"),
        ),
    ),
    ("POST", "/v1/purposes"): Row(b_purposes_create, only({"admin": CREATED})),
    ("GET", "/v1/purposes"): Row(b_purposes_list, every(OK)),
    ("POST", "/v1/corrections"): Row(b_corrections_open, only({"citizen": CREATED})),
    ("GET", "/v1/corrections"): Row(b_corrections_list, every(OK), check=c_corrections_list),
    ("GET", "/v1/corrections/{correction_id}"): Row(
        b_corrections_read,
        only({"citizen": OK, "provider": OK, "admin": OK, "auditor": OK}, (404, "correction_not_found")),
    ),
    ("POST", "/v1/corrections/{correction_id}/resolve"): Row(
        b_corrections_resolve,
        only(
            {
                "provider": OK,
                "citizen": (403, "not_issuer"),
                "admin": (403, "not_issuer"),
                "auditor": (403, "not_issuer"),
            },
            (404, "correction_not_found"),
        ),
    ),
    ("GET", "/v1/reports/data-quality"): Row(b_data_quality, only({"provider": OK, "admin": OK, "auditor": OK})),
    ("POST", "/v1/demands"): Row(b_demands_create, only({"dept": CREATED, "other_dept": CREATED})),
    ("GET", "/v1/demands"): Row(b_demands_list, every(OK), check=c_demands_list),
    ("GET", "/v1/demands/{demand_id}"): Row(
        b_demands_read, only({"dept": OK, "provider": OK, "admin": OK, "auditor": OK}, (404, "demand_not_found"))
    ),
    ("POST", "/v1/demands/{demand_id}/confirm"): Row(
        b_demands_confirm,
        only(
            {
                "provider": OK,
                "dept": (403, "not_provider"),
                "admin": (403, "not_provider"),
                "auditor": (403, "not_provider"),
            },
            (404, "demand_not_found"),
        ),
    ),
    ("POST", "/v1/demands/{demand_id}/refuse"): Row(
        b_demands_refuse,
        only(
            {
                "provider": OK,
                "dept": (403, "not_provider"),
                "admin": (403, "not_provider"),
                "auditor": (403, "not_provider"),
            },
            (404, "demand_not_found"),
        ),
    ),
    ("POST", "/v1/demands/{demand_id}/publish"): Row(
        b_demands_publish,
        only(
            {
                "provider": OK,
                "dept": (403, "not_provider"),
                "admin": (403, "not_provider"),
                "auditor": (403, "not_provider"),
            },
            (404, "demand_not_found"),
        ),
    ),
    # notifications (SPEC §9.1): any member, its own events and webhooks only
    ("GET", "/v1/events"): Row(b_events_list, every(OK), check=c_events_list),
    ("POST", "/v1/webhooks"): Row(b_webhooks_create, every(CREATED)),
    ("GET", "/v1/webhooks"): Row(b_webhooks_list, every(OK), check=c_webhooks_list),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Row(
        b_webhooks_delete, only({"dept": (204, None)}, (404, "webhook_not_found"))
    ),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Row(
        b_webhooks_deliveries, only({"dept": OK}, (404, "webhook_not_found"))
    ),
}

#: (method, path, caller) -> reason: API bugs found by this matrix (reported, not fixed here).
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def _cells() -> Iterator[Any]:
    for (method, path), _row in MATRIX.items():
        for caller in CALLERS:
            marks = []
            reason = KNOWN_BUGS.get((method, path, caller))
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            yield pytest.param(method, path, caller, id=f"{method} {path} | {caller}", marks=marks)


# ---- tests ---------------------------------------------------------------------------------------


def test_every_operation_has_a_row(world: World) -> None:
    spec = world.p.http.get("/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    }
    assert operations - set(MATRIX) == set(), "operations without a row in the authorization matrix"
    assert set(MATRIX) - operations == set(), "matrix rows that name no operation"
    # the public operations are exactly the four of SPEC §1/§5/§6; every other one needs a token
    public = {op for op, row in MATRIX.items() if row.anonymous[0] < 400}
    assert public == PUBLIC
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the access token of POST /v1/auth/token (SPEC §5)",
    }
    for op in operations - PUBLIC:
        operation = spec["paths"][op[1]][op[0].lower()]
        assert {"HTTPBearer": []} in operation.get("security", []), f"{op} does not declare the bearer token"
    for op in PUBLIC:
        assert "security" not in spec["paths"][op[1]][op[0].lower()], f"{op} is public"


@pytest.mark.parametrize(("method", "path", "caller"), list(_cells()))
def test_matrix(world: World, method: str, path: str, caller: str) -> None:
    row = MATRIX[(method, path)]
    signer = world.member(caller) if caller in MEMBERS and row.self_signed else world.member(row.rightful)
    call = row.build(world, Ctx(caller=caller, signer=signer))
    assert (call.method, _template(call.path, path)) == (method, path)
    response = world.p.http.request(
        call.method, call.path, json=call.json, params=call.params, headers=dict(world.headers[caller])
    )
    status, code = row.expect(caller)
    got = (response.status_code, _code(response))
    assert got == (status, code), f"{caller}: {method} {call.path} -> {response.status_code} {response.text[:500]}"
    if status >= 400:
        assert response.headers["content-type"] == PROBLEM_JSON, response.headers
        body = response.json()
        assert body["status"] == status and body["code"] and body["detail"], body
    elif row.check is not None:
        row.check(world, caller, response.json())


def _code(response: Any) -> str | None:
    if response.status_code < 400:
        return None
    try:
        return str(response.json().get("code"))
    except ValueError:
        return f"<not json: {response.headers.get('content-type')}>"


def _template(path: str, template: str) -> str:
    """``path`` with its concrete segments put back into ``template``'s ``{names}`` (a sanity check)."""
    parts, names = path.split("/"), template.split("/")
    if len(parts) != len(names):
        return path
    return "/".join(n if n.startswith("{") else p for p, n in zip(parts, names, strict=True))


# ---- beyond the matrix: relaying, tampering and other subjects ---------------------------------------


def test_the_token_endpoint_refuses_non_members_and_bad_signatures(world: World) -> None:
    http = world.p.http
    challenge = http.post("/v1/auth/challenge", json={"address": world.stranger.address})
    assert challenge.status_code == 200
    message = challenge.json()["message"]
    stranger_sig = Account.sign_message(encode_defunct(text=message), world.stranger.key).signature
    refused = http.post("/v1/auth/token", json={"message": message, "signature": "0x" + stranger_sig.hex()})
    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_member")
    assert refused.headers["content-type"] == PROBLEM_JSON

    # a member's challenge signed by someone else is not a login
    member_challenge = http.post("/v1/auth/challenge", json={"address": world.p.citizen.address}).json()["message"]
    forged = Account.sign_message(encode_defunct(text=member_challenge), world.stranger.key).signature
    response = http.post("/v1/auth/token", json={"message": member_challenge, "signature": "0x" + forged.hex()})
    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM_JSON, response.text
    assert response.json()["code"]


@pytest.mark.parametrize("relay", MEMBERS)
def test_any_member_relays_the_subjects_signatures(world: World, relay: str) -> None:
    """SPEC §6: grants, revocations and pauses are relayed by anyone; the signature is the authority."""
    p, headers = world.p, world.headers[relay]
    created = p.http.post("/v1/grants", json=signed(p.citizen, "Grant", grant_message(world)), headers=headers)
    assert created.status_code == 201, created.text
    grant_id = created.json()["grant_id"]
    gid = bytes.fromhex(grant_id[2:])
    deadline = int(time.time()) + 600
    pause = {"grantId": gid, "paused": True, "sequence": 1, "nonce": new_nonce(), "deadline": deadline}
    paused = p.http.post(f"/v1/grants/{grant_id}/pause", json=signed(p.citizen, "SetPaused", pause), headers=headers)
    assert paused.status_code == 200, paused.text
    revoke = {"grantId": gid, "nonce": new_nonce(), "deadline": deadline}
    revoked = p.http.post(f"/v1/grants/{grant_id}/revoke", json=signed(p.citizen, "Revoke", revoke), headers=headers)
    assert revoked.status_code == 200, revoked.text


def test_releases_need_the_grantees_own_request(world: World) -> None:
    """A consumer's signed request is its own: another consumer can neither replay it nor have it
    signed for itself."""
    p = world.p

    def release_message() -> dict[str, Any]:
        return {
            "grantId": bytes.fromhex(world.grant_id[2:]),
            "resource": resource_id("id_card"),
            "requestId": secrets.token_bytes(32),
            "deadline": int(time.time()) + 600,
        }

    def emergency_message_for(subject: str) -> dict[str, Any]:
        return {
            "emergencyId": bytes.fromhex(world.emergency_id[2:]),
            "subject": subject,
            "resource": resource_id("id_card"),
            "requestId": secrets.token_bytes(32),
            "deadline": int(time.time()) + 600,
        }

    def post(path: str, body: dict[str, Any], caller: str) -> tuple[int, str | None]:
        response = p.http.post(path, json=body, headers=world.headers[caller])
        assert response.status_code < 400 or response.headers["content-type"] == PROBLEM_JSON
        return response.status_code, _code(response)

    releases = "/v1/releases"
    emergency = f"/v1/emergencies/{world.emergency_id}/releases"
    # other_dept relays dept's signed requests
    assert post(releases, signed(p.dept, "ReleaseRequest", release_message()), "other_dept") == (403, "not_grantee")
    body = signed(p.dept, "EmergencyReleaseRequest", emergency_message_for(p.citizen.address))
    assert post(emergency, body, "other_dept") == (403, "emergency_out_of_scope")
    # dept relays requests signed by someone else (the chain checks the signer)
    for signer in (p.other_dept, p.citizen, p.admin):
        assert post(releases, signed(signer, "ReleaseRequest", release_message()), "dept") == (403, "not_grantee")
        body = signed(signer, "EmergencyReleaseRequest", emergency_message_for(p.citizen.address))
        assert post(emergency, body, "dept") == (403, "not_grantee")


def test_a_subject_cannot_touch_another_subjects_objects(world: World) -> None:
    """The second citizen (a SUBJECT too) against the first citizen's document, request, log and grants."""
    p, other = world.p, world.second_citizen
    headers = {"Authorization": f"Bearer {other.token}"}

    def status(method: str, path: str, **kwargs: Any) -> tuple[int, str | None]:
        response = p.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM_JSON
        return response.status_code, _code(response)

    assert status("GET", f"/v1/documents/{world.doc_id}") == (404, "document_not_found")
    assert status("DELETE", f"/v1/documents/{fresh_document(world)}") == (404, "document_not_found")
    content = base64.b64encode(b"forged").decode()
    assert status(
        "POST", "/v1/documents", json={"subject": p.citizen.address, "resource": "tax_record", "content": content}
    ) == (403, "role_required")
    assert status("GET", f"/v1/access-requests/{world.request_id}") == (404, "access_request_not_found")
    answer = {"decision": "reject", "reason": "not mine"}
    assert status("POST", f"/v1/access-requests/{fresh_request(world)['id']}/answer", json=answer) == (
        404,
        "access_request_not_found",
    )
    assert status("GET", f"/v1/subjects/{p.citizen.address}/access-log") == (403, "forbidden")
    assert status("GET", "/v1/grants", params={"subject": p.citizen.address}) == (403, "forbidden")
    # the first citizen's grant signed by the second citizen
    message = grant_message(world)
    assert status("POST", "/v1/grants", json=signed(other, "Grant", message)) == (403, "signature_invalid")
    listed = p.http.get("/v1/grants", headers=headers).json()["items"]
    assert world.grant_id not in {g["grant_id"] for g in listed}


def test_a_provider_issues_only_its_own_catalog_resources(world: World) -> None:
    """PROVIDER is not enough: only the resource's provider in the catalog issues it."""
    p = world.p
    other_provider = QclClient(http=p.http, account=Account.create())
    p.admin.onboard(other_provider.address, ["PROVIDER"], "Jinan Tax Bureau")
    other_provider.login()
    content = base64.b64encode(b"forged identity card").decode()
    cases = [
        (other_provider.token, "id_card", (403, "invalid_issuer")),
        (p.provider.token, "no_such_resource", (404, "resource_not_found")),
    ]
    for token, resource, expected in cases:
        response = p.http.post(
            "/v1/documents",
            json={"subject": p.citizen.address, "resource": resource, "content": content},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert (response.status_code, _code(response)) == expected, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
    assert [d["document_id"] for d in p.citizen.documents() if d["resource"] == "id_card"] == [world.doc_id]


#: What a suspended SUBJECT's token gets on the routes it keeps (SPEC §9.8 "Withdrawal always
#: works": revoke, pause, read its own grants), when the object is another subject's.
WITHDRAWAL: dict[tuple[str, str], Expect] = {
    ("GET", "/v1/grants"): (403, "forbidden"),  # it may list only its own grants
    ("GET", "/v1/grants/{grant_id}"): (404, "grant_not_found"),
    ("POST", "/v1/grants/{grant_id}/revoke"): (403, "member_suspended"),  # another subject's grant
    ("POST", "/v1/grants/{grant_id}/pause"): (403, "member_suspended"),
}


@pytest.fixture(scope="module")
def suspended(world: World) -> dict[str, dict[str, str]]:
    """Members logged in, then suspended: ``operator`` holds every role but AUDITOR and SUBJECT
    (ADMIN excludes AUDITOR), ``subject`` is an AUDITOR and SUBJECT (enrolled with the auditor's
    approval). Their tokens must open nothing, but a subject's withdrawal routes."""
    p = world.p
    found: dict[str, dict[str, str]] = {}
    key = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    for name, roles in (("operator", ["ADMIN", "PROVIDER", "CONSUMER"]), ("subject", ["AUDITOR", "SUBJECT"])):
        member = QclClient(http=p.http, account=Account.create())
        approval = None
        if "AUDITOR" in roles:
            approval = p.auditor.sign_auditor_enrolment(QclClient.auditor_enrolment_message(member.address))
        hpke = key if "CONSUMER" in roles else None
        p.admin.onboard(member.address, roles, f"Suspended {name}", hpke_public_key=hpke, auditor_approval=approval)
        member.login()
        p.admin.suspend(member.address)
        found[name] = {"address": member.address, "key": member.account.key.hex(), "token": str(member.token)}
    return found


@pytest.mark.parametrize("who", ["operator", "subject"])
@pytest.mark.parametrize(("method", "path"), sorted(op for op in MATRIX if op not in PUBLIC))
def test_a_suspended_member_can_do_nothing(
    world: World, suspended: dict[str, dict[str, str]], method: str, path: str, who: str
) -> None:
    row = MATRIX[(method, path)]
    call = row.build(world, Ctx(caller="suspended", signer=world.member(row.rightful)))
    response = world.p.http.request(
        call.method,
        call.path,
        json=call.json,
        params=call.params,
        headers={"Authorization": f"Bearer {suspended[who]['token']}"},
    )
    expected = (
        WITHDRAWAL.get((method, path), (403, "member_suspended")) if who == "subject" else (403, "member_suspended")
    )
    assert (response.status_code, _code(response)) == expected, response.text
    assert response.headers["content-type"] == PROBLEM_JSON


def test_a_suspended_member_cannot_log_in(world: World, suspended: dict[str, dict[str, str]]) -> None:
    """Only a suspended SUBJECT logs in, for its withdrawal routes (tested in test_e2e)."""
    http = world.p.http
    for who, expected in (("operator", (403, "member_suspended")), ("subject", (200, None))):
        message = http.post("/v1/auth/challenge", json={"address": suspended[who]["address"]}).json()["message"]
        key = bytes.fromhex(suspended[who]["key"])
        signature = Account.sign_message(encode_defunct(text=message), key).signature
        response = http.post("/v1/auth/token", json={"message": message, "signature": "0x" + signature.hex()})
        assert (response.status_code, _code(response)) == expected, response.text
        if expected[0] == 200:
            token = response.json()["access_token"]
            documents = http.get("/v1/documents", headers={"Authorization": f"Bearer {token}"})
            assert (documents.status_code, _code(documents)) == (403, "member_suspended")


def _claims(world: World, **changes: Any) -> dict[str, Any]:
    settings: Settings = world.p.http.app.state.settings  # type: ignore[attr-defined]
    now = int(time.time())
    claims = {
        "sub": world.p.auditor.address,
        "aud": AUDIENCE,
        "iss": settings.siwe_domain,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": secrets.token_hex(16),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


BAD_AUTHORIZATIONS: dict[str, Callable[[World, bytes], str]] = {
    "empty bearer": lambda w, key: "Bearer ",
    "garbage": lambda w, key: "Bearer not.a.token",
    "basic scheme": lambda w, key: "Basic " + base64.b64encode(b"auditor:password").decode(),
    "token without scheme": lambda w, key: jwt.encode(_claims(w), key, algorithm="HS256"),
    "alg none": lambda w, key: "Bearer " + jwt.encode(_claims(w), None, algorithm="none"),  # type: ignore[arg-type]
    "other key": lambda w, key: "Bearer " + jwt.encode(_claims(w), b"k" * 48, algorithm="HS256"),
    "expired": lambda w, key: (
        "Bearer "
        + jwt.encode(
            _claims(w, iat=int(time.time()) - 2000, nbf=int(time.time()) - 2000, exp=int(time.time()) - 1000), key
        )
    ),
    "not yet valid": lambda w, key: "Bearer " + jwt.encode(_claims(w, nbf=int(time.time()) + 600), key),
    "other audience": lambda w, key: "Bearer " + jwt.encode(_claims(w, aud="another-service"), key),
    "other issuer": lambda w, key: "Bearer " + jwt.encode(_claims(w, iss="evil.example"), key),
    "no expiry": lambda w, key: "Bearer " + jwt.encode(_claims(w, exp=None), key),
    "no subject": lambda w, key: "Bearer " + jwt.encode(_claims(w, sub=None), key),
    "subject not an address": lambda w, key: "Bearer " + jwt.encode(_claims(w, sub="auditor"), key),
}


@pytest.mark.parametrize("flavour", sorted(BAD_AUTHORIZATIONS))
def test_bad_tokens_are_401(world: World, flavour: str) -> None:
    """Every malformed, forged, expired or foreign token is 401 (checked on an AUDITOR-only read)."""
    settings: Settings = world.p.http.app.state.settings  # type: ignore[attr-defined]
    authorization = BAD_AUTHORIZATIONS[flavour](world, jwt_secret(settings))
    response = world.p.http.get("/v1/audit/checkpoints", headers={"Authorization": authorization})
    assert response.status_code == 401, (flavour, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON and response.json()["code"], response.text
    # the same claims with the service's key and no defect open it
    good = "Bearer " + jwt.encode(_claims(world), jwt_secret(settings), algorithm="HS256")
    assert world.p.http.get("/v1/audit/checkpoints", headers={"Authorization": good}).status_code == 200
