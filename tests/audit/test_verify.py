"""The verification engine over synthetic trails: every kind of tampering is found and named.

The same checks run against real chains in tests/api/test_e2e.py (over RPC) and
tests/vault/test_audit_index.py (over the indexer's tables).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from audit import synthetic, verify
from audit.verify import TrailEvent, Verifier
from chain_client.ids import WILDCARD
from db.release_log import LOG_PREFIX


@pytest.fixture(scope="module")
def base() -> synthetic.SyntheticTrail:
    return synthetic.build(600, grantees=5, subjects=20, grants=40, checkpoint_every=100, texts=50, seed=7)


@pytest.fixture
def trail(base: synthetic.SyntheticTrail) -> synthetic.SyntheticTrail:
    """A fresh copy tests may edit."""
    return replace(
        base,
        events_list=list(base.events_list),
        transactions_list=list(base.transactions_list),
        entries=list(base.entries),
        texts=list(base.texts),
    )


def codes(report: verify.Report) -> set[str]:
    return {v.code for v in report.violations}


def releases(trail: synthetic.SyntheticTrail) -> list[int]:
    return [i for i, e in enumerate(trail.events_list) if e.name == "ReleaseRecorded"]


def entry(trail: synthetic.SyntheticTrail, index: int) -> dict:
    return json.loads(trail.entries[index][len(LOG_PREFIX) :])


def signature_of(event: TrailEvent) -> bytes:
    """The signature a release event carries."""
    return bytes.fromhex(event.args["signature"][2:])


def with_signature(event: TrailEvent, signature: bytes | None) -> TrailEvent:
    """``event`` carrying ``signature`` (None: neither signature nor deadline, as an unsigned release)."""
    args = dict(event.args)
    if signature is None:
        args.pop("signature"), args.pop("deadline")
    else:
        args["signature"] = "0x" + signature.hex()
    return replace(event, args=args)


def encode(fields: dict) -> bytes:
    return LOG_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def test_an_untouched_trail_verifies(trail: synthetic.SyntheticTrail) -> None:
    report = Verifier(trail, workers=1).verify()
    assert report.ok, report.violations[:5]
    assert report.relocated == []
    assert (report.releases, report.signatures_checked, report.log_entries, report.checkpoints) == (600, 600, 600, 6)
    assert report.transactions_scanned == 12


def test_worker_processes_find_what_one_process_finds(
    trail: synthetic.SyntheticTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "CHUNK", 100)
    monkeypatch.setattr(verify, "PARALLEL_MIN", 100)
    for i in releases(trail)[::97]:  # a few forged signatures spread over the chunks
        event = trail.events_list[i]
        signature = signature_of(event)
        trail.events_list[i] = with_signature(event, signature[:10] + b"\x00" + signature[11:])
    alone = Verifier(trail, workers=1).verify()
    pooled = Verifier(trail, workers=2).verify()
    assert alone.violations == pooled.violations
    assert len(pooled.violations) == 7 and codes(pooled) == {"signature_invalid"}


def test_an_edited_log_entry_breaks_its_checkpoint(trail: synthetic.SyntheticTrail) -> None:
    fields = entry(trail, 5)
    fields["released_at"] += 1  # a field the chain does not know: only the checkpoint shows it
    trail.entries[5] = encode(fields)
    report = Verifier(trail, workers=1).verify()
    assert codes(report) == {"checkpoint_mismatch"}
    assert len(report.violations) == 6  # every checkpoint covers entry 5


def test_a_log_entry_naming_another_resource_is_a_mismatch(trail: synthetic.SyntheticTrail) -> None:
    fields = entry(trail, 150)
    fields["resource"] = "0x" + "ab" * 32
    trail.entries[150] = encode(fields)
    report = Verifier(trail, workers=1).verify()
    mismatch = [v for v in report.violations if v.code == "log_mismatch"]
    assert len(mismatch) == 1 and mismatch[0].log_index == 150 and mismatch[0].tx_hash == fields["tx_hash"]


def test_a_deleted_entry_leaves_a_receipt_without_release(trail: synthetic.SyntheticTrail) -> None:
    gone = entry(trail, 599)
    del trail.entries[599]
    report = Verifier(trail, workers=1).verify()
    assert codes(report) == {"receipt_without_release", "checkpoint_beyond_log"}
    missing = [v for v in report.violations if v.code == "receipt_without_release"]
    assert [v.tx_hash for v in missing] == [gone["tx_hash"]]


def test_reordered_entries(trail: synthetic.SyntheticTrail) -> None:
    trail.entries[10], trail.entries[11] = trail.entries[11], trail.entries[10]
    report = Verifier(trail, workers=1).verify()
    assert {"log_out_of_order", "checkpoint_mismatch"} == codes(report)
    assert {v.log_index for v in report.violations if v.code == "log_out_of_order"} == {10, 11}


def test_an_inserted_entry_has_no_receipt(trail: synthetic.SyntheticTrail) -> None:
    forged = entry(trail, 599) | {"index": 600, "request_id": "0x" + "11" * 32}
    trail.entries.append(encode(forged))
    report = Verifier(trail, workers=1).verify()
    assert codes(report) == {"release_without_receipt"}
    assert report.violations[0].log_index == 600


def test_a_release_after_revocation(trail: synthetic.SyntheticTrail) -> None:
    first = releases(trail)[0]
    release = trail.events_list[first]
    revoke = TrailEvent(
        "GrantRevoked",
        release.block_number,
        release.log_index,
        "0x" + "22" * 32,
        release.timestamp,
        {"grantId": release.args["grantId"], "subject": "0x" + "00" * 20},
    )
    trail.events_list.insert(first, revoke)
    report = Verifier(trail, workers=1).verify()
    revoked = [v for v in report.violations if v.code == "grant_revoked"]
    same_grant = [
        e
        for e in trail.events_list[first:]
        if e.name == "ReleaseRecorded" and e.args["grantId"] == release.args["grantId"]
    ]
    assert codes(report) == {"grant_revoked"} and len(revoked) == len(same_grant) >= 1
    assert revoked[0].tx_hash == release.tx_hash


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda s: s[:5] + bytes([s[5] ^ 1]) + s[6:], "signature_invalid"),  # another r
        (lambda s: s[:40] + bytes([s[40] ^ 1]) + s[41:], "signature_invalid"),  # another s
        (lambda s: s[:64] + bytes([s[64] ^ 1]), "signature_malformed"),  # v of 26 or 29
        (lambda s: s[:64] + b"\x01", "signature_malformed"),
        (lambda s: s[:64], "signature_malformed"),
        (None, "signature_missing"),
    ],
)
def test_signature_faults(trail: synthetic.SyntheticTrail, edit, code: str) -> None:  # type: ignore[no-untyped-def]
    i = releases(trail)[3]
    event = trail.events_list[i]
    trail.events_list[i] = with_signature(event, edit(signature_of(event)) if edit else None)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(2, code, event.tx_hash)]


def test_a_malleable_signature_is_refused(trail: synthetic.SyntheticTrail) -> None:
    order = int(verify._sigcheck.HALF_ORDER.hex(), 16) * 2 + 1
    i = releases(trail)[4]
    event = trail.events_list[i]
    signature = signature_of(event)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    flipped = r + (order - s).to_bytes(32, "big") + bytes([55 - v])  # the same point, high s
    trail.events_list[i] = with_signature(event, flipped)
    assert codes(Verifier(trail, workers=1).verify()) == {"signature_malleable"}


def test_a_signature_by_someone_else(trail: synthetic.SyntheticTrail) -> None:
    a, b = releases(trail)[0], releases(trail)[1]
    first, second = trail.events_list[a], trail.events_list[b]
    assert first.args["grantee"] != second.args["grantee"]
    trail.events_list[a] = with_signature(first, signature_of(second))
    report = Verifier(trail, workers=1).verify()
    assert [v.code for v in report.violations] == ["signature_invalid"]
    assert first.args["grantee"].lower() in report.violations[0].detail


def test_a_reused_request_id(trail: synthetic.SyntheticTrail) -> None:
    ids = releases(trail)
    first = trail.events_list[ids[0]]
    again = next(i for i in ids[1:] if trail.events_list[i].args["grantee"] == first.args["grantee"])
    event = trail.events_list[again]
    trail.events_list[again] = replace(event, args=dict(event.args) | {"requestId": first.args["requestId"]})
    report = Verifier(trail, workers=1).verify()
    reused = [v for v in report.violations if v.code == "request_reused"]
    assert [(v.check, v.tx_hash) for v in reused] == [(1, event.tx_hash)]


def test_personal_data_in_calldata_names_the_transaction(trail: synthetic.SyntheticTrail) -> None:
    name = trail.texts[3]
    block, tx_hash, data = trail.transactions_list[7]
    trail.transactions_list[7] = (block, tx_hash, data[:100] + name.encode() + data[100:])
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(4, "personal_data_on_chain", tx_hash)]


def test_a_text_spanning_two_transactions_is_not_a_finding(trail: synthetic.SyntheticTrail) -> None:
    code = trail.texts[-1].encode()
    b1, h1, d1 = trail.transactions_list[0]
    b2, h2, d2 = trail.transactions_list[1]
    trail.transactions_list[0] = (b1, h1, d1 + code[:5])
    trail.transactions_list[1] = (b2, h2, code[5:] + d2)
    assert Verifier(trail, workers=1).verify().ok


def test_the_block_range_limits_what_is_checked(trail: synthetic.SyntheticTrail) -> None:
    i = releases(trail)[-1]
    event = trail.events_list[i]
    trail.events_list[i] = with_signature(event, None)
    assert codes(Verifier(trail, workers=1).verify()) == {"signature_missing"}
    earlier = Verifier(trail, workers=1).verify(to_block=event.block_number - 1)
    assert earlier.ok and earlier.releases < 600


def test_the_recovery_id_is_not_held_against_a_valid_r_s(trail: synthetic.SyntheticTrail) -> None:
    """(r, s) under the grantee's key is the proof; v only picks a candidate key (see _sigcheck).
    The outcome must not depend on whether the signer's key was already known in the worker."""
    ids = releases(trail)
    for i in (ids[0], ids[-1]):  # the first signature of a signer, and a later one
        event = trail.events_list[i]
        signature = signature_of(event)
        trail.events_list[i] = with_signature(event, signature[:64] + bytes([55 - signature[64]]))
    verify._sigcheck._KEYS.clear()
    assert Verifier(trail, workers=1).verify().ok


# ---- the three places where the verifier was more lenient than the contract (issue 11) ----------


def _subject(trail: synthetic.SyntheticTrail) -> str:
    return str(
        next(e.args["account"] for e in trail.events_list if e.name == "MemberOnboarded" and e.args["roles"] == 16)
    )


def _resource(trail: synthetic.SyntheticTrail) -> str:
    return str(next(e.args["resource"] for e in trail.events_list if e.name == "ResourceRegistered"))


def test_appended_releases_verify(trail: synthetic.SyntheticTrail) -> None:
    """The helpers the next tests use leave a trail that verifies (so what they find is the edit)."""
    synthetic.append_grant_release(trail, resources=[_resource(trail)], resource=_resource(trail))
    synthetic.add_emergency(trail, resource=_resource(trail), subject=_subject(trail))
    report = Verifier(trail, workers=1).verify()
    assert report.ok, report.violations
    assert (report.releases, report.emergency_releases, report.signatures_checked) == (601, 1, 602)


def test_a_release_signed_with_an_expired_deadline(trail: synthetic.SyntheticTrail) -> None:
    """The contract refuses a request whose signed deadline is before the block's time."""
    i = releases(trail)[5]
    event = synthetic.resign(trail, i, deadline=trail.events_list[i].timestamp - 1)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(1, "deadline_expired", event.tx_hash)]


def test_a_release_at_its_deadline_is_in_time(trail: synthetic.SyntheticTrail) -> None:
    i = releases(trail)[5]
    synthetic.resign(trail, i, deadline=trail.events_list[i].timestamp)
    assert Verifier(trail, workers=1).verify().ok


def test_an_emergency_release_to_a_suspended_consumer(trail: synthetic.SyntheticTrail) -> None:
    index, consumer = synthetic.add_emergency(trail, resource=_resource(trail), subject=_subject(trail))
    release = trail.events_list[index]
    suspend = TrailEvent(
        "MemberSuspensionChanged",
        release.block_number,
        99,
        "0x" + "33" * 32,
        release.timestamp,
        {"account": consumer, "suspended": True},
    )
    trail.events_list.insert(index, suspend)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(1, "member_inactive", release.tx_hash)]


def test_an_emergency_release_about_a_non_subject(trail: synthetic.SyntheticTrail) -> None:
    stranger = "0x" + "ab" * 20
    index, _ = synthetic.add_emergency(trail, resource=_resource(trail), subject=stranger)
    report = Verifier(trail, workers=1).verify()
    assert [(v.code, v.tx_hash) for v in report.violations] == [("member_inactive", trail.events_list[index].tx_hash)]


def test_a_release_of_the_wildcard_id_itself(trail: synthetic.SyntheticTrail) -> None:
    """ "*" in a grant covers catalog resources, never a release naming the wildcard's own id."""
    wildcard = "0x" + WILDCARD.hex()
    index = synthetic.append_grant_release(trail, resources=[wildcard], resource=wildcard)
    report = Verifier(trail, workers=1).verify()
    assert [(v.code, v.tx_hash) for v in report.violations] == [
        ("resource_not_granted", trail.events_list[index].tx_hash)
    ]


def test_emergency_releases_are_counted_from_the_first_block_asked_for(trail: synthetic.SyntheticTrail) -> None:
    first, _ = synthetic.add_emergency(trail, resource=_resource(trail), subject=_subject(trail))
    second, _ = synthetic.add_emergency(trail, resource=_resource(trail), subject=_subject(trail))
    report = Verifier(trail, workers=1).verify()
    assert report.ok and report.emergency_releases == 2
    block = trail.events_list[second].block_number
    assert block > trail.events_list[first].block_number
    later = Verifier(trail, workers=1).verify(from_block=block)  # the release in from_block counts
    assert later.ok and later.emergency_releases == 1


def test_an_emergency_violation_names_the_emergency(trail: synthetic.SyntheticTrail) -> None:
    index, _ = synthetic.add_emergency(trail, resource=_resource(trail), subject="0x" + "ab" * 20)
    emergency_id = trail.events_list[index].args["emergencyId"]
    (violation,) = Verifier(trail, workers=1).verify().violations
    assert violation.detail == f"ConsentLedgerInactiveMember: release under {emergency_id}"


# ---- what the replay counts and reads (issue 18: tests that bite) ---------------------------------


def _emergency_release(trail: synthetic.SyntheticTrail) -> tuple[int, TrailEvent]:
    index, _ = synthetic.add_emergency(trail, resource=_resource(trail), subject=_subject(trail))
    return index, trail.events_list[index]


def test_grants_are_counted_from_the_first_block_asked_for(trail: synthetic.SyntheticTrail) -> None:
    first = synthetic.append_grant_release(trail, resources=[_resource(trail)], resource=_resource(trail))
    second = synthetic.append_grant_release(trail, resources=[_resource(trail)], resource=_resource(trail))
    assert Verifier(trail, workers=1).verify().grants == 42
    for index, grants in ((first, 2), (second, 1)):
        later = Verifier(trail, workers=1).verify(from_block=trail.events_list[index].block_number)
        assert later.ok and later.grants == grants


def test_an_unknown_rule_error_is_reported_by_its_name(
    trail: synthetic.SyntheticTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule error without a violation code of its own is still a violation, under its name."""
    target = trail.events_list[releases(trail)[2]]
    check = verify.rules.check_release

    def checked(state: verify.rules.State, item: verify.rules.ReleaseItem) -> str | None:
        return "ConsentLedgerSomethingNew" if item.request_id == target.args["requestId"] else check(state, item)

    monkeypatch.setattr(verify.rules, "check_release", checked)
    (violation,) = Verifier(trail, workers=1).verify().violations
    assert (violation.check, violation.code, violation.tx_hash) == (1, "ConsentLedgerSomethingNew", target.tx_hash)
    assert violation.detail.startswith("ConsentLedgerSomethingNew: release of ")


def test_a_deadline_without_a_signature_is_an_unsigned_release(trail: synthetic.SyntheticTrail) -> None:
    i = releases(trail)[6]
    event = trail.events_list[i]
    args = dict(event.args)
    del args["signature"]
    trail.events_list[i] = replace(event, args=args)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(2, "signature_missing", event.tx_hash)]


def test_a_signature_given_as_bytes(trail: synthetic.SyntheticTrail) -> None:
    """A source may give the signature as bytes rather than hex text (the proof of a v1 event)."""
    for i in releases(trail)[:50]:
        event = trail.events_list[i]
        trail.events_list[i] = replace(event, args=dict(event.args) | {"signature": signature_of(event)})
    report = Verifier(trail, workers=1).verify()
    assert report.ok and report.signatures_checked == 600


def test_a_wildcard_grant_covers_an_earlier_catalog_resource(trail: synthetic.SyntheticTrail) -> None:
    """The replay keeps each event's block: the wildcard covers a resource registered before the grant."""
    wildcard = "0x" + WILDCARD.hex()
    index = synthetic.append_grant_release(trail, resources=[wildcard], resource=_resource(trail))
    report = Verifier(trail, workers=1).verify()
    assert report.ok, report.violations
    assert report.releases == 601 and trail.events_list[index].name == "ReleaseRecorded"


def test_an_emergency_release_reusing_its_request_id(trail: synthetic.SyntheticTrail) -> None:
    index, release = _emergency_release(trail)
    again = replace(release, log_index=release.log_index + 1, tx_hash="0x" + "44" * 32)
    trail.events_list.insert(index + 1, again)
    report = Verifier(trail, workers=1).verify()
    reused = [(v.check, v.tx_hash) for v in report.violations if v.code == "request_reused"]
    assert reused == [(1, again.tx_hash)]


def test_a_grant_release_reusing_an_emergency_request_id(trail: synthetic.SyntheticTrail) -> None:
    """The emergency release used its (consumer, request id): a later release may not use it again."""
    _, release = _emergency_release(trail)
    consumer, request_id = release.args["consumer"], release.args["requestId"]
    later = synthetic.append_grant_release(trail, resources=[_resource(trail)], resource=_resource(trail))
    synthetic.resign(trail, later, grantee=consumer, requestId=request_id)
    grant = next(i for i in range(later - 1, 0, -1) if trail.events_list[i].name == "GrantRecorded")
    event = trail.events_list[grant]
    trail.events_list[grant] = replace(event, args=dict(event.args) | {"grantee": consumer})
    report = Verifier(trail, workers=1).verify()
    reused = [(v.check, v.code, v.tx_hash) for v in report.violations if v.check == 1]
    assert reused == [(1, "request_reused", trail.events_list[later].tx_hash)]


def test_an_unsigned_emergency_release(trail: synthetic.SyntheticTrail) -> None:
    index, release = _emergency_release(trail)
    trail.events_list[index] = with_signature(release, None)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(2, "signature_missing", release.tx_hash)]


def test_an_emergency_release_signed_with_an_expired_deadline(trail: synthetic.SyntheticTrail) -> None:
    index, release = _emergency_release(trail)
    event = synthetic.resign(trail, index, deadline=release.timestamp - 1)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(1, "deadline_expired", event.tx_hash)]


def test_a_forged_emergency_release_signature_names_its_transaction(trail: synthetic.SyntheticTrail) -> None:
    index, release = _emergency_release(trail)
    signature = signature_of(release)
    trail.events_list[index] = with_signature(release, signature[:7] + bytes([signature[7] ^ 1]) + signature[8:])
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(2, "signature_invalid", release.tx_hash)]


# ---- every violation in full: check, code, detail, transaction, log position ----------------------


Full = tuple[int, str, str, str | None, int | None]


def full(report: verify.Report, *codes: str) -> list[Full]:
    return [(v.check, v.code, v.detail, v.tx_hash, v.log_index) for v in report.violations if v.code in codes]


def checkpoint_txs(trail: synthetic.SyntheticTrail) -> list[tuple[int, str]]:
    return [(int(e.args["treeSize"]), e.tx_hash) for e in trail.events_list if e.name == "CheckpointAnchored"]


@pytest.mark.parametrize("raw", [b"garbage", LOG_PREFIX + b"{", LOG_PREFIX + b"[]", LOG_PREFIX + b'{"index": 3}'])
def test_an_unparsable_entry(trail: synthetic.SyntheticTrail, raw: bytes) -> None:
    release = entry(trail, 3)
    trail.entries[3] = raw
    report = Verifier(trail, workers=1).verify()
    assert full(report, "log_entry_malformed") == [(3, "log_entry_malformed", "unparsable log entry", None, 3)]
    missing = "the chain recorded a release the vault never logged"
    assert full(report, "receipt_without_release") == [
        (3, "receipt_without_release", missing, release["tx_hash"], None)
    ]
    assert codes(report) == {"log_entry_malformed", "receipt_without_release", "checkpoint_mismatch"}


def test_an_entry_logged_twice(trail: synthetic.SyntheticTrail) -> None:
    again = entry(trail, 5) | {"index": 600}
    trail.entries.append(encode(again))
    report = Verifier(trail, workers=1).verify()
    assert full(report, "log_duplicate") == [(3, "log_duplicate", "the release is logged twice", again["tx_hash"], 600)]
    assert codes(report) == {"log_duplicate"}


def test_an_entry_naming_another_transaction(trail: synthetic.SyntheticTrail) -> None:
    fields = entry(trail, 7) | {"tx_hash": "0x" + "5e" * 32}
    trail.entries[7] = encode(fields)
    report = Verifier(trail, workers=1).verify()
    detail = "log and chain name different transactions"
    assert full(report, "receipt_mismatch") == [(3, "receipt_mismatch", detail, fields["tx_hash"], 7)]
    assert codes(report) == {"receipt_mismatch", "checkpoint_mismatch"}


def test_a_transaction_hash_in_upper_case_is_the_same(trail: synthetic.SyntheticTrail) -> None:
    fields = entry(trail, 7)
    fields["tx_hash"] = "0x" + fields["tx_hash"][2:].upper()
    trail.entries[7] = encode(fields)
    assert codes(Verifier(trail, workers=1).verify()) == {"checkpoint_mismatch"}  # the entry's bytes changed


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "emergency"},
        {"authority": "0x" + "ab" * 32},
        {"subject": "0x" + "cd" * 20},
        {"block_number": "999"},
        {"block_number": True},
        {"block_number": 999, "resource": "0x" + "ef" * 32},
    ],
)
def test_an_entry_differing_from_its_receipt(trail: synthetic.SyntheticTrail, change: dict) -> None:
    fields = entry(trail, 9) | change
    trail.entries[9] = encode(fields)
    report = Verifier(trail, workers=1).verify()
    detail = "the log entry and the chain's receipt differ"
    assert full(report, "log_mismatch") == [(3, "log_mismatch", detail, fields["tx_hash"], 9)]
    assert report.relocated == []


def test_an_entry_whose_transaction_was_mined_again_elsewhere_is_relocated(trail: synthetic.SyntheticTrail) -> None:
    """The same transaction with the same fields at another block (its first block was lost and
    the vault sent the same bytes again): listed in ``relocated``, not a violation of check 3."""
    fields = entry(trail, 9)
    chain_block = fields["block_number"]
    trail.entries[9] = encode(fields | {"block_number": chain_block - 3})
    report = Verifier(trail, workers=1).verify()
    assert "log_mismatch" not in codes(report) and not full(report, "receipt_mismatch")
    assert report.relocated == [verify.Relocation(fields["tx_hash"], 9, chain_block - 3, chain_block)]
    assert report.as_dict()["relocated"] == [
        {"tx_hash": fields["tx_hash"], "log_index": 9, "logged_block": chain_block - 3, "chain_block": chain_block}
    ]


def test_entries_out_of_order_in_full(trail: synthetic.SyntheticTrail) -> None:
    ten, eleven = entry(trail, 10), entry(trail, 11)
    trail.entries[10], trail.entries[11] = trail.entries[11], trail.entries[10]
    report = Verifier(trail, workers=1).verify()
    assert full(report, "log_out_of_order") == [
        (3, "log_out_of_order", "entry 11 at position 10", eleven["tx_hash"], 10),
        (3, "log_out_of_order", "entry 10 at position 11", ten["tx_hash"], 11),
    ]


def test_checkpoints_in_full(trail: synthetic.SyntheticTrail) -> None:
    anchors = checkpoint_txs(trail)
    del trail.entries[599]
    report = Verifier(trail, workers=1).verify()
    last_size, last_tx = anchors[-1]
    assert full(report, "checkpoint_beyond_log") == [
        (3, "checkpoint_beyond_log", f"checkpoint of {last_size} entries, log has 599", last_tx, None)
    ]
    trail.entries.append(b"anything")  # 600 entries again, the last one another
    report = Verifier(trail, workers=1).verify()
    detail = f"the log's root at size {last_size} differs from the anchor"
    assert full(report, "checkpoint_mismatch") == [(3, "checkpoint_mismatch", detail, last_tx, None)]
    assert report.checkpoints == len(anchors) == 6


def test_the_first_block_asked_for_is_checked_in_the_log_too(trail: synthetic.SyntheticTrail) -> None:
    """A receipt in from_block without its entry, and an entry in from_block without its receipt."""
    i = releases(trail)[-1]
    block = trail.events_list[i].block_number
    last = entry(trail, 599)
    assert last["block_number"] == block
    del trail.entries[599]
    forged = entry(trail, 598) | {"index": 599, "request_id": "0x" + "12" * 32, "block_number": block}
    trail.entries.append(encode(forged))
    report = Verifier(trail, workers=1).verify(from_block=block)
    assert full(report, "receipt_without_release") == [
        (3, "receipt_without_release", "the chain recorded a release the vault never logged", last["tx_hash"], None)
    ]
    assert full(report, "release_without_receipt") == [
        (3, "release_without_receipt", "the vault logged a release the chain never recorded", forged["tx_hash"], 599)
    ]


def test_an_unknown_entry_outside_the_range_is_passed_over(trail: synthetic.SyntheticTrail) -> None:
    """An entry the chain does not know, logged at a block outside the range, is not a finding, and the
    entries after it are still compared."""
    gone = entry(trail, 300)
    trail.entries[300] = encode(gone | {"request_id": "0x" + "13" * 32, "block_number": 10_000})
    report = Verifier(trail, workers=1).verify()
    assert [v.tx_hash for v in report.violations if v.code == "receipt_without_release"] == [gone["tx_hash"]]
    assert codes(report) == {"receipt_without_release", "checkpoint_mismatch"}


def test_a_release_naming_another_grantee_in_full(trail: synthetic.SyntheticTrail) -> None:
    i = releases(trail)[8]
    event = trail.events_list[i]
    others = sorted(
        {e.args["grantee"] for e in trail.events_list if e.name == "ReleaseRecorded"} - {event.args["grantee"]}
    )
    edited = synthetic.resign(trail, i, grantee=others[0])
    report = Verifier(trail, workers=1).verify()
    assert full(report, "not_grantee") == [
        (1, "not_grantee", "the release names another grantee", edited.tx_hash, None)
    ]


def test_a_rule_violation_names_the_release(trail: synthetic.SyntheticTrail) -> None:
    i = releases(trail)[5]
    event = synthetic.resign(trail, i, deadline=trail.events_list[i].timestamp - 1)
    a = event.args
    detail = f"ConsentLedgerExpiredDeadline: release of {a['resource']} under {a['grantId']}"
    assert full(Verifier(trail, workers=1).verify(), "deadline_expired") == [
        (1, "deadline_expired", detail, event.tx_hash, None)
    ]


def test_a_release_signed_with_deadline_zero(trail: synthetic.SyntheticTrail) -> None:
    """Deadline 0 is signed as the zero word: expired, but the signature is the grantee's."""
    i = releases(trail)[5]
    event = synthetic.resign(trail, i, deadline=0)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.code, v.tx_hash) for v in report.violations] == [(1, "deadline_expired", event.tx_hash)]


# ---- check 4 at its edges ----------------------------------------------------------------------------


def test_a_text_at_the_start_of_the_first_transaction(trail: synthetic.SyntheticTrail) -> None:
    block, tx_hash, data = trail.transactions_list[0]
    trail.transactions_list[0] = (block, tx_hash, trail.texts[0].encode() + data)
    report = Verifier(trail, workers=1).verify()
    detail = "calldata contains a member's name, an org code or a reason text"
    assert full(report, "personal_data_on_chain") == [(4, "personal_data_on_chain", detail, tx_hash, None)]
    assert len(report.violations) == 1


def test_calldata_searched_in_pieces(trail: synthetic.SyntheticTrail, monkeypatch: pytest.MonkeyPatch) -> None:
    """After each piece the positions start again: a text at the start or end of a later transaction."""
    sizes = [len(data) for _, _, data in trail.transactions_list]
    monkeypatch.setattr(verify, "SCAN_BYTES", sizes[0] + sizes[1])  # pieces of two transactions
    text = trail.texts[0].encode()
    for i in (3, 5):  # the second of the second piece, the second of the third
        block, tx_hash, data = trail.transactions_list[i]
        trail.transactions_list[i] = (block, tx_hash, text + data if i == 3 else data + text)
    report = Verifier(trail, workers=1).verify()
    hashes = [trail.transactions_list[i][1] for i in (3, 5)]
    assert [(v.check, v.tx_hash) for v in report.violations] == [(4, hashes[0]), (4, hashes[1])]


def test_a_logged_address_in_lower_case_is_the_same(trail: synthetic.SyntheticTrail) -> None:
    fields = entry(trail, 9)
    assert fields["subject"] != fields["subject"].lower()  # EIP-55 on chain
    trail.entries[9] = encode(fields | {"subject": fields["subject"].lower()})
    assert codes(Verifier(trail, workers=1).verify()) == {"checkpoint_mismatch"}  # the entry's bytes changed


def test_a_text_of_the_shortest_length_searched(trail: synthetic.SyntheticTrail) -> None:
    short = "Wu L"
    assert len(short.encode()) == verify.MIN_TEXT_BYTES
    trail.texts.append(short)
    block, tx_hash, data = trail.transactions_list[4]
    trail.transactions_list[4] = (block, tx_hash, data + short.encode())
    assert [v.tx_hash for v in Verifier(trail, workers=1).verify().violations] == [tx_hash]
    trail.texts[-1] = short[:3]  # shorter: not searched
    block, tx_hash, data = trail.transactions_list[4]
    trail.transactions_list[4] = (block, tx_hash, data + short[:3].encode())
    assert Verifier(trail, workers=1).verify().ok


def test_a_text_inside_a_transaction_after_one_spanning_the_boundary(trail: synthetic.SyntheticTrail) -> None:
    """Matches overlap: a text spanning two transactions must not hide one wholly inside the second."""
    trail.texts.extend(["Licheng Dist", "District Hospital"])
    b1, h1, d1 = trail.transactions_list[2]
    b2, h2, d2 = trail.transactions_list[3]
    trail.transactions_list[2] = (b1, h1, d1 + b"Licheng ")
    trail.transactions_list[3] = (b2, h2, b"District Hospital" + d2)
    report = Verifier(trail, workers=1).verify()
    assert [(v.check, v.tx_hash) for v in report.violations] == [(4, h2)]


def test_no_private_texts(trail: synthetic.SyntheticTrail) -> None:
    trail.texts.clear()
    report = Verifier(trail, workers=1).verify()
    assert report.ok and report.transactions_scanned == 12


# ---- progress and the collector -------------------------------------------------------------------


def test_progress_through_the_stages(trail: synthetic.SyntheticTrail, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "PROGRESS_EVERY", 300)
    calls: list[tuple[str, int]] = []
    report = Verifier(trail, workers=1).verify(progress=lambda stage, count: calls.append((stage, count)))
    events = len(trail.events_list)
    assert 600 < events < 900
    assert calls == [
        ("events", 300),
        ("events", 600),
        ("events", events),
        ("log", 600),
        ("calldata", 12),
        ("signatures", 600),
    ]
    assert report.ok


def test_the_collector_is_off_during_verification_only(trail: synthetic.SyntheticTrail) -> None:
    import gc

    during: list[bool] = []
    assert gc.isenabled()
    Verifier(trail, workers=1).verify(progress=lambda stage, count: during.append(gc.isenabled()))
    assert during and not any(during) and gc.isenabled()
    gc.disable()
    try:
        Verifier(trail, workers=1).verify()
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()


def test_grant_releases_are_counted_from_the_first_block_asked_for(trail: synthetic.SyntheticTrail) -> None:
    report = Verifier(trail, workers=1).verify()
    assert report.from_block == 0 and report.to_block == trail.head_block  # the defaults: the whole chain
    block = trail.events_list[releases(trail)[-1]].block_number
    in_range = sum(trail.events_list[i].block_number >= block for i in releases(trail))
    i = releases(trail)[-1]
    trail.events_list[i] = with_signature(trail.events_list[i], None)  # a finding in from_block itself
    later = Verifier(trail, workers=1).verify(from_block=block)
    assert later.releases == later.signatures_checked == in_range < 600
    assert codes(later) == {"signature_missing"}
