"""End to end over the HTTP API against anvil: onboarding to shredding (issue 5's story)."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from audit.checkpoints import anchor_checkpoint
from chain_client.ids import purpose_id, resource_id
from qcl_client import ApiError, QclClient
from tests.api.conftest import Platform

pytestmark = pytest.mark.both_databases  # SQLite, then PostgreSQL (tests/api/conftest.py)

CARD = b"Resident identity card of Zhang San, 370102199001011234"


def _expect(code: str, status: int, call, *args, **kwargs) -> ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as failed:
        call(*args, **kwargs)
    assert (failed.value.status, failed.value.code) == (status, code), failed.value.body
    return failed.value


def test_the_whole_story(platform: Platform) -> None:
    p = platform
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD, metadata={"issuer_ref": "PSB-2026-1"})
    assert doc["issuer"] == p.provider.address and doc["tx_hash"].startswith("0x")
    assert [d["document_id"] for d in p.citizen.documents()] == [doc["document_id"]]
    assert p.citizen.read_document(doc["document_id"]) == CARD

    grant = p.citizen.grant(p.dept.address, ["id_card"], "loan-application", max_uses=2)
    grant_id = grant["grant_id"]
    listed = p.citizen.grants(subject=p.citizen.address)
    assert [(g["grant_id"], g["status"], g["uses"]) for g in listed] == [(grant_id, "active", 0)]

    first_body = p.dept.release_request(grant_id, "id_card")
    opened = p.dept.release(
        grant_id,
        "id_card",
        p.dept_key,
        body=first_body,
        anchored_commitment=p.deployed.ledger.document(bytes.fromhex(doc["document_id"][2:])).commitment,
    )
    assert opened.content == CARD
    # SPEC §9.7: the exact same signed request again is the same release (200), not a second use
    again = p.http.post("/v1/releases", json=first_body, headers={"Authorization": f"Bearer {p.dept.token}"})
    assert again.status_code == 200
    first_answer = p.dept.call("GET", f"/v1/releases/{again.json()['release_id']}")
    assert (again.json()["tx_hash"], again.json()["document"]) == (first_answer["tx_hash"], first_answer["document"])
    assert p.dept.grants(grantee=p.dept.address)[0]["uses"] == 1
    # another request under the same request id is a replay
    request_id = bytes.fromhex(first_body["message"]["requestId"][2:])
    other = p.dept.release_request(grant_id, "id_card", request_id=request_id)
    other["message"]["deadline"] = str(int(other["message"]["deadline"]) + 1)
    other = p.dept._signed(  # re-signed: a valid, different request under a used request id
        "ReleaseRequest",
        {
            "grantId": bytes.fromhex(grant_id[2:]),
            "resource": bytes.fromhex(other["message"]["resource"][2:]),
            "requestId": request_id,
            "deadline": int(other["message"]["deadline"]),
        },
    )
    _expect("request_used", 409, p.dept.release, grant_id, "id_card", p.dept_key, body=other)
    assert p.dept.release(grant_id, "id_card", p.dept_key).content == CARD
    _expect("grant_exhausted", 403, p.dept.release, grant_id, "id_card", p.dept_key)
    assert p.dept.grants(grantee=p.dept.address)[0]["status"] == "exhausted"

    second = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.citizen.pause(second)
    _expect("grant_paused", 403, p.dept.release, second, "id_card", p.dept_key)
    p.citizen.pause(second, False)
    p.citizen.revoke(second)
    _expect("grant_revoked", 403, p.dept.release, second, "id_card", p.dept_key)

    log = p.citizen.access_log(p.citizen.address)
    assert [(e["kind"], e["grantee"], e["authority"]) for e in log] == [("grant", p.dept.address, grant_id)] * 2
    assert {e["purpose"] for e in log} == {"0x" + purpose_id("loan-application").hex()}  # from the index
    assert p.auditor.access_log(p.citizen.address) == log
    _expect("forbidden", 403, p.dept.access_log, p.citizen.address)

    third = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    deleted = p.citizen.delete_document(doc["document_id"])
    assert deleted["deleted"] is True and deleted["tombstone_tx"]
    _expect("document_deleted", 410, p.citizen.read_document, doc["document_id"])
    _expect("document_deleted", 410, p.dept.release, third, "id_card", p.dept_key)
    assert len(p.citizen.access_log(p.citizen.address)) == 2  # nothing released after shredding


def test_only_the_grantee_releases(platform: Platform) -> None:
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    _expect("not_grantee", 403, p.other_dept.release, grant_id, "id_card", p.dept_key)
    _expect("role_required", 403, p.citizen.release, grant_id, "id_card", p.dept_key)
    _expect("resource_not_granted", 403, p.dept.release, grant_id, "tax_record", p.dept_key)


def test_login_rules(platform: Platform) -> None:
    p = platform
    _expect("not_a_member", 403, p.stranger().login)
    _expect("not_authenticated", 401, p.stranger().documents)
    p.admin.suspend(p.dept.address)
    _expect("member_suspended", 403, p.dept.documents)  # the suspension bites at the next call
    p.admin.suspend(p.dept.address, False)
    assert p.dept.documents() == []


def test_others_documents_are_not_found(platform: Platform) -> None:
    p = platform
    doc = p.provider.store_document(p.citizen.address, "id_card", CARD)
    for outsider in (p.dept, p.provider, p.auditor, p.admin):
        _expect("document_not_found", 404, outsider.read_document, doc["document_id"])
        _expect("document_not_found", 404, outsider.delete_document, doc["document_id"])
    _expect("role_required", 403, p.dept.store_document, p.citizen.address, "id_card", b"forged")
    _expect("resource_not_found", 404, p.provider.store_document, p.citizen.address, "no_such", b"x")


def test_malformed_input_is_a_clear_4xx(platform: Platform) -> None:
    p = platform
    headers = {"Authorization": f"Bearer {p.citizen.token}"}
    cases = [
        ("POST", "/v1/grants", {"message": {"subject": "0x1234"}, "signature": "0x00"}),
        (
            "POST",
            "/v1/grants",
            {
                "message": {
                    "subject": p.citizen.address,
                    "grantee": p.dept.address,
                    "resources": ["0x" + "11" * 31],
                    "purpose": "0x" + "22" * 32,
                    "validFrom": 0,
                    "validUntil": 1,
                    "maxUses": 2**40,
                    "nonce": str(2**256),
                    "deadline": -1,
                },
                "signature": "0x" + "00" * 65,
            },
        ),
        ("POST", "/v1/releases", {"message": {"grantId": "0xzz"}, "signature": "nothex"}),
        ("POST", "/v1/documents", {"subject": p.citizen.address, "resource": "id_card", "content": "***"}),
        ("POST", "/v1/auth/challenge", {"address": "0x" + "gg" * 20}),
        ("GET", "/v1/documents/0x1234", None),
        ("GET", "/v1/members/not-an-address", None),
    ]
    for method, path, body in cases:
        response = p.http.request(method, path, json=body, headers=headers)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] and "Traceback" not in response.text
    wrong_type = p.http.post("/v1/documents", content=b"subject=x", headers={**headers, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 422 and wrong_type.json()["code"] == "invalid_input"


def test_huge_bodies_are_413(platform: Platform) -> None:
    p = platform
    huge = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    response = p.http.post(
        "/v1/documents",
        content=huge,
        headers={"Authorization": f"Bearer {p.citizen.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


def test_access_request_answered_by_a_signed_grant(platform: Platform) -> None:
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    asked = p.dept.request_access(
        p.citizen.address, ["id_card"], "housing-provident-fund-withdrawal", max_uses=1, note="application 2026-1128"
    )
    assert asked["status"] == "pending"
    assert [r["id"] for r in p.citizen.access_requests(status="pending")] == [asked["id"]]
    _expect("access_request_not_found", 404, p.other_dept.call, "GET", f"/v1/access-requests/{asked['id']}")
    _expect("not_subject", 403, p.dept.answer_access_request, asked, grant=False, reason="no")
    answered = p.citizen.answer_access_request(asked, grant=True)
    assert answered["status"] == "granted" and answered["grant_id"]
    _expect("request_closed", 409, p.citizen.answer_access_request, asked, grant=False)
    assert p.dept.release(answered["grant_id"], "id_card", p.dept_key).content == CARD
    rejected = p.citizen.answer_access_request(
        p.dept.request_access(p.citizen.address, ["tax_record"], "credit-check"), grant=False, reason="not needed"
    )
    assert rejected["status"] == "rejected" and rejected["reason"] == "not needed"
    _expect("role_required", 403, p.citizen.request_access, p.citizen.address, ["id_card"], "self")


def test_emergency_channel(platform: Platform) -> None:
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Flood response, Licheng district", hours=12)
    proposed = p.admin.propose_emergency(message, "Flood response, Licheng district")
    assert proposed["approvals"] == 1 and proposed["active"] is False
    _expect(
        "emergency_not_approved",
        403,
        p.dept.emergency_release,
        proposed["emergency_id"],
        p.citizen.address,
        "id_card",
        p.dept_key,
    )
    _expect("role_required", 403, p.dept.approve_emergency, message)
    approved = p.auditor.approve_emergency(message)
    assert approved["active"] is True and approved["approvals"] == 2
    opened = p.dept.emergency_release(proposed["emergency_id"], p.citizen.address, "id_card", p.dept_key)
    assert opened.content == CARD
    _expect(
        "emergency_out_of_scope",
        403,
        p.other_dept.emergency_release,
        proposed["emergency_id"],
        p.citizen.address,
        "id_card",
        p.dept_key,
    )
    log = p.citizen.access_log(p.citizen.address)
    assert [(e["kind"], e["authority"], e["purpose"]) for e in log] == [("emergency", proposed["emergency_id"], None)]
    assert [e["emergency_id"] for e in p.dept.emergencies()] == [proposed["emergency_id"]]
    assert p.other_dept.emergencies() == []
    _expect("role_required", 403, p.citizen.emergencies)


def test_auditor_trail_verify_and_proofs(platform: Platform) -> None:
    import base64

    from audit import merkle

    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    for _ in range(3):
        p.dept.release(grant_id, "id_card", p.dept_key)
    size, root, _tx = anchor_checkpoint(p.vault.ledger, p.vault.store)  # type: ignore[misc]
    assert size == 3
    p.dept.release(grant_id, "id_card", p.dept_key)
    anchor_checkpoint(p.vault.ledger, p.vault.store)
    p.citizen.revoke(grant_id)

    trail = p.auditor.call("GET", "/v1/audit/trail", params={"subject": p.citizen.address})["items"]
    assert [e["event"] for e in trail] == ["GrantRecorded"] + ["ReleaseRecorded"] * 4 + ["GrantRevoked"]
    report = p.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["ok"] is True, report["violations"]
    assert (report["releases"], report["log_entries"], report["checkpoints"]) == (4, 4, 2)
    assert report["transactions_scanned"] > 0

    checkpoints = p.auditor.call("GET", "/v1/audit/checkpoints")
    assert (checkpoints[0]["tree_size"], checkpoints[0]["root_hash"]) == (3, "0x" + root.hex())
    for checkpoint in checkpoints:  # SPEC §6, §9.7: each names its transaction and block
        receipt = p.deployed.ledger.w3.eth.get_transaction_receipt(checkpoint["tx_hash"])
        assert receipt["blockNumber"] == checkpoint["block_number"] and receipt["status"] == 1
        block = p.deployed.ledger.w3.eth.get_block(checkpoint["block_number"])
        assert block["timestamp"] == checkpoint["anchored_at"]
    release_id = p.citizen.access_log(p.citizen.address)[1]["release_id"]
    proof = p.auditor.call("GET", "/v1/audit/proofs/inclusion", params={"release_id": release_id, "tree_size": 3})
    assert merkle.verify_inclusion(
        base64.b64decode(proof["entry"]),
        proof["leaf_index"],
        3,
        [bytes.fromhex(h[2:]) for h in proof["audit_path"]],
        root,
    )
    consistency = p.auditor.call("GET", "/v1/audit/proofs/consistency", params={"first": 3, "second": 4})
    assert merkle.verify_consistency(
        3, 4, root, bytes.fromhex(consistency["second_root"][2:]), [bytes.fromhex(h[2:]) for h in consistency["proof"]]
    )
    _expect("role_required", 403, p.citizen.call, "POST", "/v1/audit/verify", json={})


def test_verify_detects_a_tampered_log(platform: Platform) -> None:
    from sqlalchemy import delete, update

    from db.models import ReleaseLogRow

    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    p.dept.release(grant_id, "id_card", p.dept_key)
    anchor_checkpoint(p.vault.ledger, p.vault.store)
    assert p.auditor.call("POST", "/v1/audit/verify", json={})["ok"] is True

    with p.vault.store.session() as s:  # an insider edits the first entry (still valid JSON)
        row = s.get(ReleaseLogRow, 0)
        assert row is not None
        edited = row.entry.replace(b'"kind":"grant"', b'"kind": "grant"')
        assert edited != row.entry
        s.execute(update(ReleaseLogRow).where(ReleaseLogRow.idx == 0).values(entry=edited))
    codes = {v["code"] for v in p.auditor.call("POST", "/v1/audit/verify", json={})["violations"]}
    assert codes == {"checkpoint_mismatch"}

    with p.vault.store.session() as s:  # and deletes the second entry
        s.execute(delete(ReleaseLogRow).where(ReleaseLogRow.idx == 1))
    report = p.auditor.call("POST", "/v1/audit/verify", json={})
    codes = {v["code"] for v in report["violations"]}
    assert report["ok"] is False and {"receipt_without_release", "checkpoint_beyond_log"} <= codes
    missing = [v for v in report["violations"] if v["code"] == "receipt_without_release"]
    assert len(missing) == 1 and missing[0]["tx_hash"].startswith("0x")


def test_auditor_report_json_and_html(platform: Platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    p.dept.release(grant_id, "id_card", p.dept_key)
    body = p.auditor.call("GET", "/v1/audit/reports", params={"subject": p.citizen.address, "verify": "true"})
    assert len(body["releases"]) == 2 and body["by_department"] == {"Housing Provident Fund Center": 2}
    assert body["verification"]["ok"] is True
    page = p.http.get(
        "/v1/audit/reports",
        params={"department": p.dept.address, "format": "html"},
        headers={"Authorization": f"Bearer {p.auditor.token}"},
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "Housing Provident Fund Center" in page.text and page.text.count("<tr>") >= 3
    (tmp_path / "report.html").write_text(page.text)
    _expect("role_required", 403, p.dept.call, "GET", "/v1/audit/reports")


def _two_releases(p: Platform) -> str:
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    p.dept.release(grant_id, "id_card", p.dept_key)
    anchor_checkpoint(p.vault.ledger, p.vault.store)
    assert p.auditor.call("POST", "/v1/audit/verify", json={})["ok"] is True
    return str(grant_id)


def _codes(p: Platform) -> set[str]:
    return {v["code"] for v in p.auditor.call("POST", "/v1/audit/verify", json={})["violations"]}


def test_verify_detects_reordered_entries(platform: Platform) -> None:
    from sqlalchemy import update

    from db.models import ReleaseLogRow

    p = platform
    _two_releases(p)
    with p.vault.store.session() as s:
        first, second = s.get(ReleaseLogRow, 0), s.get(ReleaseLogRow, 1)
        assert first is not None and second is not None
        a, b = bytes(first.entry), bytes(second.entry)
        s.execute(update(ReleaseLogRow).where(ReleaseLogRow.idx == 0).values(entry=b))
        s.execute(update(ReleaseLogRow).where(ReleaseLogRow.idx == 1).values(entry=a))
    assert {"log_out_of_order", "checkpoint_mismatch"} <= _codes(p)


def test_verify_detects_an_inserted_release_after_revocation(platform: Platform) -> None:
    """A release forced into the log after the grant was revoked has no receipt on chain."""
    import dataclasses
    import secrets

    from db.models import ReleaseLogRow
    from db.release_log import LogEntry

    p = platform
    grant_id = _two_releases(p)
    p.citizen.revoke(grant_id)
    head = p.deployed.ledger.head_block()
    with p.vault.store.session() as s:
        last = LogEntry.parse(bytes(s.get(ReleaseLogRow, 1).entry))  # type: ignore[union-attr]
        forged = dataclasses.replace(
            last,
            index=2,
            release_id="0x" + secrets.token_hex(32),
            request_id="0x" + secrets.token_hex(32),
            block_number=head,
        )
        s.add(
            ReleaseLogRow(
                idx=2,
                release_id=forged.release_id,
                subject=forged.subject,
                grantee=forged.grantee,
                entry=forged.canonical(),
                created_at=forged.released_at,
                tx_hash=forged.tx_hash,
            )
        )
    assert "release_without_receipt" in _codes(p)


def test_verify_detects_personal_data_in_calldata(platform: Platform) -> None:
    p = platform
    _two_releases(p)
    # an operator mistake: a member's name written into a catalog entry on chain
    p.admin.register_resource("note_for_citizen", "Citizen Zhang", p.provider.address, 1)
    report = p.auditor.call("POST", "/v1/audit/verify", json={})
    found = [v for v in report["violations"] if v["code"] == "personal_data_on_chain"]
    assert len(found) == 1 and found[0]["check"] == 4 and found[0]["tx_hash"].startswith("0x")


def test_verification_jobs_report_progress_and_the_same_report(platform: Platform) -> None:
    import time

    from audit.verify import Report
    from chain_client import ChainUnavailable

    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    direct = p.auditor.call("POST", "/v1/audit/verify", json={})

    job = p.auditor.call("POST", "/v1/audit/verifications", json={})
    assert job["status"] in ("queued", "running") and job["total_events"] > 0 and job["to_block"] == direct["to_block"]
    deadline = time.time() + 30
    while job["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.05)
        job = p.auditor.call("GET", f"/v1/audit/verifications/{job['id']}")
    assert job["status"] == "done" and job["error"] is None
    assert job["events"] == job["total_events"] and job["stage"] == "signatures"
    assert job["report"] == direct and job["report"]["releases"] == 1

    _expect("verification_not_found", 404, p.auditor.call, "GET", "/v1/audit/verifications/" + "0" * 32)
    jobs = p.http.app.state.verifications  # type: ignore[attr-defined]
    theirs = jobs.start(owner=p.dept.address, from_block=0, to_block=0, total_events=0)
    _expect("verification_not_found", 404, p.auditor.call, "GET", f"/v1/audit/verifications/{theirs.id}")
    while jobs.get(theirs.id).status != "done":  # the jobs live in the database; the runner runs them
        time.sleep(0.02)

    def chain_down(_first: int, _last: int, _progress: object) -> Report:
        raise ChainUnavailable("the chain did not answer")

    real, jobs.run = jobs.run, chain_down
    try:
        down = jobs.start(owner=p.auditor.address, from_block=0, to_block=0, total_events=None)
        while (failed := p.auditor.call("GET", f"/v1/audit/verifications/{down.id}"))["status"] in (
            "queued",
            "running",
        ):
            time.sleep(0.02)
    finally:
        jobs.run = real
    assert failed["status"] == "failed" and failed["report"] is None
    assert failed["error"] == {"status": 503, "code": "chain_unavailable", "detail": "the chain did not answer"}

    jobs.max_running = 0
    _expect("too_many_verifications", 429, p.auditor.call, "POST", "/v1/audit/verifications", json={})
    _expect(
        "invalid_range", 422, p.auditor.call, "POST", "/v1/audit/verifications", json={"from_block": 5, "to_block": 1}
    )


# ---- SPEC §9.8 security amendments, through the API ---------------------------------------------


def test_an_admin_alone_cannot_enrol_an_auditor(platform: Platform) -> None:
    """H1: AUDITOR needs an existing auditor's co-signature; ADMIN with AUDITOR is refused."""
    p = platform
    own_key = Account.create()
    _expect("auditor_approval_required", 422, p.admin.onboard, own_key.address, ["AUDITOR"], "Own second key")
    _expect("conflicting_roles", 422, p.admin.onboard, own_key.address, ["ADMIN", "AUDITOR"], "Both")
    own = QclClient(http=p.http, account=own_key)
    self_signed = own.sign_auditor_enrolment(QclClient.auditor_enrolment_message(own_key.address))
    _expect(
        "approval_invalid", 403, p.admin.onboard, own_key.address, ["AUDITOR"], "Own key", auditor_approval=self_signed
    )
    by_admin = p.admin.sign_auditor_enrolment(QclClient.auditor_enrolment_message(own_key.address))
    _expect(
        "approval_invalid", 403, p.admin.onboard, own_key.address, ["AUDITOR"], "Own key", auditor_approval=by_admin
    )
    other = Account.create()
    wrong_account = p.auditor.sign_auditor_enrolment(QclClient.auditor_enrolment_message(other.address))
    _expect("invalid_input", 422, p.admin.onboard, own_key.address, ["AUDITOR"], "X", auditor_approval=wrong_account)

    approval = p.auditor.sign_auditor_enrolment(QclClient.auditor_enrolment_message(other.address))
    enrolled = p.admin.onboard(other.address, ["AUDITOR"], "Provincial audit office", auditor_approval=approval)
    assert enrolled["roles"] == ["AUDITOR"] and enrolled["name"] == "Provincial audit office"
    _expect("nonce_used", 409, p.admin.onboard, other.address, ["AUDITOR"], "Replay", auditor_approval=approval)


def test_a_stale_resume_is_refused(platform: Platform) -> None:
    """M3: a resume signed before a later pause cannot undo it (409 stale_sequence)."""
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    assert p.citizen.grant_detail(grant_id)["pause_sequence"] == 0
    p.citizen.pause(grant_id)
    lost_resume = p.citizen.signed_pause(p.citizen.pause_message(grant_id, False))  # sequence 2, kept
    p.citizen.resume(grant_id, sequence=3)
    p.citizen.pause(grant_id)  # sequence 4
    detail = p.citizen.grant_detail(grant_id)
    assert (detail["status"], detail["pause_sequence"], detail["uses"]) == ("paused", 4, 0)
    _expect("stale_sequence", 409, p.dept.call, "POST", f"/v1/grants/{grant_id}/pause", json=lost_resume)
    _expect("grant_paused", 403, p.dept.release, grant_id, "id_card", p.dept_key)
    assert p.dept.grant_detail(grant_id)["status"] == "paused"  # the grantee reads it too
    _expect("grant_not_found", 404, p.other_dept.grant_detail, grant_id)
    assert p.auditor.grant_detail(grant_id)["grant_id"] == grant_id


def test_a_cancelled_emergency_releases_nothing(platform: Platform) -> None:
    """M1: an ADMIN or AUDITOR ends an emergency at once; the reason is salted (finding I)."""
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    text = "Flood response, Licheng district"
    message = p.admin.emergency_message(["id_card"], [p.dept.address], text)
    unsalted = p.admin._signed("Emergency", message) | {"reason_text": text, "reason_salt": "0x" + "00" * 32}
    _expect("reason_mismatch", 422, p.admin.call, "POST", "/v1/emergencies", json=unsalted)
    proposed = p.admin.propose_emergency(message, text)
    assert proposed["reason_salt"] and proposed["active"] is False and proposed["cancelled"] is False
    approved = p.auditor.approve_emergency(message)
    assert approved["active"] is True and approved["approvers"] == [p.admin.address, p.auditor.address]
    _expect("role_required", 403, p.dept.cancel_emergency, proposed["emergency_id"])
    cancelled = p.auditor.cancel_emergency(proposed["emergency_id"])
    assert (cancelled["cancelled"], cancelled["active"]) == (True, False)
    _expect(
        "emergency_cancelled",
        409,
        p.dept.emergency_release,
        proposed["emergency_id"],
        p.citizen.address,
        "id_card",
        p.dept_key,
    )
    _expect("emergency_cancelled", 409, p.admin.cancel_emergency, proposed["emergency_id"])
    (listed,) = [e for e in p.admin.emergencies() if e["emergency_id"] == proposed["emergency_id"]]
    assert listed["cancelled"] is True and listed["active"] is False
    assert p.citizen.access_log(p.citizen.address) == []


def test_a_wildcard_grant_does_not_cover_a_later_resource(platform: Platform) -> None:
    """M2: a resource registered after a "*" grant is outside it."""
    p = platform
    grant_id = p.citizen.grant(p.dept.address, ["*"], "loan-application")["grant_id"]
    p.admin.register_resource("pension_record", "Pension record", p.provider.address, 1)
    p.provider.store_document(p.citizen.address, "pension_record", b"pension record of Zhang San")
    _expect("resource_not_granted", 403, p.dept.release, grant_id, "pension_record", p.dept_key)
    later = p.citizen.grant(p.dept.address, ["*"], "loan-application")["grant_id"]
    assert p.dept.release(later, "pension_record", p.dept_key).content == b"pension record of Zhang San"


def test_a_grant_revoked_before_it_was_recorded_cannot_be_recorded(platform: Platform) -> None:
    """L1: the subject revokes a signed grant (a lost QR code) that was never relayed."""
    p = platform
    now = int(time.time())
    message = {
        "subject": p.citizen.address,
        "grantee": p.dept.address,
        "resources": [resource_id("id_card")],
        "purpose": purpose_id("loan-application"),
        "validFrom": now - 60,
        "validUntil": now + 3600,
        "maxUses": 1,
        "nonce": 12345,
        "deadline": now + 600,
    }
    qr_body = p.citizen.signed_grant(message)
    grant_id = "0x" + p.deployed.ledger.hash_grant(message).hex()
    _expect("grant_not_found", 404, p.citizen.revoke, grant_id)  # without its terms: unknown
    other_terms = qr_body["message"] | {"maxUses": 2}
    _expect("invalid_input", 422, p.citizen.revoke, grant_id, grant=other_terms)
    assert p.citizen.revoke(grant_id, grant=qr_body["message"])["tx_hash"].startswith("0x")
    _expect("grant_revoked", 403, p.dept.call, "POST", "/v1/grants", json=qr_body)


def test_a_suspended_subject_can_still_withdraw(platform: Platform) -> None:
    """Finding I / PIPL Art. 15: a suspended subject logs in to revoke, pause and read its grants only."""
    p = platform
    first = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    second = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.admin.suspend(p.citizen.address)
    _expect("member_suspended", 403, p.citizen.documents)  # the old token: only withdrawal routes
    p.citizen.login()  # a suspended subject may log in, with a withdraw-only token
    assert {g["grant_id"] for g in p.citizen.grants()} == {first, second}
    p.citizen.pause(first)
    p.citizen.revoke(second)
    _expect("member_inactive", 403, p.citizen.resume, first)  # resuming needs an active subject
    _expect("member_suspended", 403, p.citizen.documents)
    _expect("member_suspended", 403, p.citizen.grant, p.dept.address, ["id_card"], "loan-application")
    _expect("member_suspended", 403, p.citizen.call, "GET", f"/v1/members/{p.citizen.address}")
    foreign = p.dept.grants()[0]["grant_id"]  # the dept's view: it is the grantee of the citizen's grants
    _expect("forbidden", 403, p.citizen.grants, grantee=p.other_dept.address)
    assert p.citizen.grant_detail(foreign)["subject"] == p.citizen.address
    assert p.citizen.grant_detail(first)["status"] == "paused"
    assert p.citizen.grant_detail(second)["status"] == "revoked"
    p.admin.suspend(p.citizen.address, False)
    _expect("member_suspended", 403, p.citizen.documents)  # a withdraw-only token stays one
    p.citizen.login()
    assert p.citizen.documents() == []


def test_two_admins_do_not_activate_an_emergency(platform: Platform) -> None:
    """H1: an ADMIN with a second ADMIN key still needs an AUDITOR's approval."""
    p = platform
    second = QclClient(http=p.http, account=Account.create())
    p.admin.onboard(second.address, ["ADMIN"], "The operator's second key")
    second.login()
    text = "Earthquake drill, Tianqiao district"
    message = p.admin.emergency_message(["id_card"], [p.dept.address], text)
    p.admin.propose_emergency(message, text)
    approved = second.approve_emergency(message)
    assert (approved["approvals"], approved["active"]) == (2, False)
    emergency_id = "0x" + message["emergencyId"].hex()
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    _expect(
        "emergency_not_approved", 403, p.dept.emergency_release, emergency_id, p.citizen.address, "id_card", p.dept_key
    )
    assert p.auditor.approve_emergency(message)["active"] is True
    p.admin.suspend(p.auditor.address)  # approvals count only while the approver is active
    (listed,) = [e for e in p.admin.emergencies() if e["emergency_id"] == emergency_id]
    assert listed["active"] is False
