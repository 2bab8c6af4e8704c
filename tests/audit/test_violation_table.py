"""One test per audit rule: a table of trail edits -> the exact set of violation codes expected.

Every code the verifier can emit (``audit.verify.VIOLATION_CODES``) has at least one row, and
:func:`test_every_code_has_a_row` fails when one is added without a row; the source scan below
fails when a code is emitted that the registry does not list. The table runs on a synthetic trail
and on a trail read from a real chain (anvil, over RPC) — where one of the two releases went
through a forwarding contract, so check 2 reads the signed request from the event alone (L2).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from audit import _sigcheck, rules, synthetic, verify
from audit.synthetic import SyntheticTrail
from audit.trail import RpcTrail
from audit.verify import TrailEvent, Verifier
from chain_client import CompilationResult
from chain_client.ids import new_request_ids
from db.release_log import LOG_PREFIX
from tests.chain_client.world import ID_CARD, TAX, make_world
from tests.conftest import Deployed

OTHER32 = "0x" + "ab" * 32


@dataclass
class Ctx:
    """Where the edits apply: two releases g1, g2 (g2 later) under one grant, their log entries,
    and (synthetic trails only) an emergency release."""

    g1: int
    g2: int
    e1: int
    e2: int
    em: int | None = None
    e_em: int | None = None


def copy_of(trail: SyntheticTrail) -> SyntheticTrail:
    return replace(
        trail,
        events_list=list(trail.events_list),
        transactions_list=list(trail.transactions_list),
        entries=list(trail.entries),
        texts=list(trail.texts),
        keys=dict(trail.keys),
    )


# ---- edit helpers -------------------------------------------------------------------------------


def _find(trail: SyntheticTrail, name: str, **match: Any) -> int:
    return next(
        i
        for i, e in enumerate(trail.events_list)
        if e.name == name and all(e.args.get(k) == v for k, v in match.items())
    )


def _edit_args(trail: SyntheticTrail, index: int, **changes: Any) -> None:
    event = trail.events_list[index]
    trail.events_list[index] = replace(event, args=dict(event.args) | changes)


def _grant_of(trail: SyntheticTrail, ctx: Ctx) -> int:
    return _find(trail, "GrantRecorded", grantId=trail.events_list[ctx.g1].args["grantId"])


def _insert_before(trail: SyntheticTrail, index: int, name: str, args: dict[str, Any]) -> None:
    at = trail.events_list[index]
    trail.events_list.insert(
        index, TrailEvent(name, at.block_number, at.log_index, "0x" + "77" * 32, at.timestamp, args)
    )


def _emergency_id(trail: SyntheticTrail, ctx: Ctx) -> str:
    assert ctx.em is not None
    return str(trail.events_list[ctx.em].args["emergencyId"])


def _entry(trail: SyntheticTrail, index: int) -> dict[str, Any]:
    return dict(json.loads(trail.entries[index][len(LOG_PREFIX) :]))


def _put_entry(trail: SyntheticTrail, index: int, fields: dict[str, Any]) -> None:
    raw = LOG_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    if index == len(trail.entries):
        trail.entries.append(raw)
    else:
        trail.entries[index] = raw


def _signature(trail: SyntheticTrail, index: int, edit: Callable[[bytes], bytes | None]) -> None:
    args = dict(trail.events_list[index].args)
    new = edit(bytes.fromhex(args["signature"][2:]))
    if new is None:
        del args["signature"], args["deadline"]
    else:
        args["signature"] = "0x" + new.hex()
    trail.events_list[index] = replace(trail.events_list[index], args=args)


def _high_s(signature: bytes) -> bytes:
    order = int(_sigcheck.HALF_ORDER.hex(), 16) * 2 + 1
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (order - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def _other_grantee(trail: SyntheticTrail, ctx: Ctx) -> str:
    mine = trail.events_list[ctx.g1].args["grantee"]
    return str(next(a for a in trail.keys if a != mine and _is_consumer(trail, a)))


def _is_consumer(trail: SyntheticTrail, account: str) -> bool:
    return any(
        e.name == "MemberOnboarded" and e.args["account"] == account and e.args["roles"] & 4 for e in trail.events_list
    )


def _suspend_approver(trail: SyntheticTrail, ctx: Ctx) -> None:
    assert ctx.em is not None
    approvals = [i for i, e in enumerate(trail.events_list) if e.name == "EmergencyApproved"]
    auditor = trail.events_list[approvals[-1]].args["approver"]
    _insert_before(trail, ctx.em, "MemberSuspensionChanged", {"account": auditor, "suspended": True})


def _reuse_request(trail: SyntheticTrail, ctx: Ctx) -> None:
    synthetic.resign(trail, ctx.g2, requestId=trail.events_list[ctx.g1].args["requestId"])


def _personal_data(trail: SyntheticTrail, ctx: Ctx) -> None:
    trail.texts.append("王小明-370102199001011234")
    block, tx_hash, data = trail.transactions_list[-1]
    trail.transactions_list[-1] = (block, tx_hash, data + "王小明-370102199001011234".encode())


def _anchor(trail: SyntheticTrail, size: int, root: str) -> None:
    last = trail.events_list[-1]
    args = {"index": 99, "treeSize": size, "rootHash": root}
    trail.events_list.append(
        TrailEvent("CheckpointAnchored", last.block_number, last.log_index + 1, "0x" + "99" * 32, last.timestamp, args)
    )


def _good_anchor(trail: SyntheticTrail) -> str:
    from audit.merkle import MerkleLog, leaf_hash

    return "0x" + MerkleLog([leaf_hash(e) for e in trail.entries]).root().hex()


# ---- the table ----------------------------------------------------------------------------------

Edit = Callable[[SyntheticTrail, Ctx], None]
#: (name, edit, exact codes expected, needs an emergency release)
TABLE: list[tuple[str, Edit, set[str], bool]] = [
    # check 1, grants
    (
        "expired deadline",
        lambda t, c: _edit_noop(synthetic.resign(t, c.g1, deadline=t.events_list[c.g1].timestamp - 1)),
        {"deadline_expired"},
        False,
    ),
    ("grant never recorded", lambda t, c: _delete(t, _grant_of(t, c)), {"unknown_grant"}, False),
    (
        "released after revocation",
        lambda t, c: _insert_before(
            t, c.g1, "GrantRevoked", {"grantId": t.events_list[c.g1].args["grantId"], "subject": "0x" + "00" * 20}
        ),
        {"grant_revoked"},
        False,
    ),
    (
        "released after the window",
        lambda t, c: _edit_args(t, _grant_of(t, c), validUntil=t.events_list[c.g1].timestamp),
        {"grant_window"},
        False,
    ),
    (
        "released before the window",
        lambda t, c: _edit_args(t, _grant_of(t, c), validFrom=t.events_list[c.g2].timestamp + 1),
        {"grant_window"},
        False,
    ),
    ("used more than maxUses", lambda t, c: _edit_args(t, _grant_of(t, c), maxUses=1), {"grant_exhausted"}, False),
    (
        "released while paused",
        lambda t, c: _insert_before(
            t,
            c.g1,
            "GrantPauseChanged",
            {"grantId": t.events_list[c.g1].args["grantId"], "paused": True, "sequence": 1},
        ),
        {"grant_paused"},
        False,
    ),
    (
        "resource not in the grant",
        lambda t, c: _edit_args(t, _grant_of(t, c), resources=[OTHER32]),
        {"resource_not_granted"},
        False,
    ),
    (
        "wildcard and a sensitivity-3 resource",
        lambda t, c: (
            _edit_args(t, _grant_of(t, c), resources=[rules.WILDCARD_ID]),
            _insert_before(
                t, c.g1, "ResourceUpdated", {"resource": t.events_list[c.g1].args["resource"], "sensitivity": 3}
            ),
        ),
        {"resource_not_granted"},
        False,
    ),
    (
        "grantee suspended",
        lambda t, c: _insert_before(
            t, c.g1, "MemberSuspensionChanged", {"account": t.events_list[c.g1].args["grantee"], "suspended": True}
        ),
        {"member_inactive"},
        False,
    ),
    ("request id reused", _reuse_request, {"request_reused", "receipt_mismatch", "release_without_receipt"}, False),
    (
        "release names another grantee",
        lambda t, c: _edit_args(t, _grant_of(t, c), grantee=_other_grantee(t, c)),
        {"not_grantee"},
        False,
    ),
    # check 1, emergencies
    (
        "emergency never proposed",
        lambda t, c: _delete(t, _find(t, "EmergencyProposed", emergencyId=_emergency_id(t, c))),
        {"unknown_emergency"},
        True,
    ),
    (
        "emergency cancelled",
        lambda t, c: _insert_before(
            t, c.em, "EmergencyCancelled", {"emergencyId": _emergency_id(t, c), "by": "0x" + "00" * 20}
        ),
        {"emergency_cancelled"},
        True,
    ),  # type: ignore[arg-type]
    (
        "emergency lacks an approval",
        lambda t, c: _delete(t, max(i for i, e in enumerate(t.events_list) if e.name == "EmergencyApproved")),
        {"emergency_not_approved"},
        True,
    ),
    ("an approver suspended since", _suspend_approver, {"emergency_not_approved"}, True),
    (
        "emergency window over",
        lambda t, c: _edit_args(
            t, _find(t, "EmergencyProposed", emergencyId=_emergency_id(t, c)), validUntil=t.events_list[c.em].timestamp
        ),  # type: ignore[index]
        {"emergency_outside_window"},
        True,
    ),
    (
        "consumer outside the scope",
        lambda t, c: _edit_args(
            t, _find(t, "EmergencyProposed", emergencyId=_emergency_id(t, c)), consumers=["0x" + "00" * 20]
        ),
        {"emergency_out_of_scope"},
        True,
    ),
    (
        "emergency about a non-subject",
        lambda t, c: _edit_noop(synthetic.resign(t, c.em, subject="0x" + "cd" * 20)),  # type: ignore[arg-type]
        {"member_inactive", "log_mismatch"},
        True,
    ),
    # check 2
    ("unsigned release", lambda t, c: _signature(t, c.g1, lambda s: None), {"signature_missing"}, False),
    ("truncated signature", lambda t, c: _signature(t, c.g1, lambda s: s[:64]), {"signature_malformed"}, False),
    ("high-s signature", lambda t, c: _signature(t, c.g1, _high_s), {"signature_malleable"}, False),
    (
        "another r",
        lambda t, c: _signature(t, c.g1, lambda s: s[:5] + bytes([s[5] ^ 1]) + s[6:]),
        {"signature_invalid"},
        False,
    ),
    # check 3
    (
        "unparsable entry",
        lambda t, c: t.entries.__setitem__(c.e1, b"garbage"),
        {"log_entry_malformed", "receipt_without_release"},
        False,
    ),
    ("entries swapped", lambda t, c: _swap(t.entries, c.e1, c.e2), {"log_out_of_order"}, False),
    (
        "entry logged twice",
        lambda t, c: _put_entry(t, len(t.entries), _entry(t, c.e2) | {"index": len(t.entries)}),
        {"log_duplicate"},
        False,
    ),
    (
        "entry without a release",
        lambda t, c: _put_entry(t, len(t.entries), _entry(t, c.e2) | {"index": len(t.entries), "request_id": OTHER32}),
        {"release_without_receipt"},
        False,
    ),
    (
        "entry names another transaction",
        lambda t, c: _put_entry(t, c.e1, _entry(t, c.e1) | {"tx_hash": OTHER32}),
        {"receipt_mismatch"},
        False,
    ),
    (
        "entry names another resource",
        lambda t, c: _put_entry(t, c.e1, _entry(t, c.e1) | {"resource": OTHER32}),
        {"log_mismatch"},
        False,
    ),
    ("last entry deleted", lambda t, c: _edit_noop(t.entries.pop()), {"receipt_without_release"}, False),
    (
        "checkpoint beyond the log",
        lambda t, c: _anchor(t, len(t.entries) + 1, OTHER32),
        {"checkpoint_beyond_log"},
        False,
    ),
    ("checkpoint of another root", lambda t, c: _anchor(t, len(t.entries), OTHER32), {"checkpoint_mismatch"}, False),
    (
        "edited entry under a checkpoint",
        lambda t, c: (
            _anchor(t, len(t.entries), _good_anchor(t)),
            _put_entry(t, c.e1, _entry(t, c.e1) | {"released_at": 1}),
        ),
        {"checkpoint_mismatch"},
        False,
    ),
    # check 4
    ("personal data in calldata", _personal_data, {"personal_data_on_chain"}, False),
]


def _edit_noop(_: object) -> None:
    return None


def _delete(trail: SyntheticTrail, index: int) -> None:
    del trail.events_list[index]


def _swap(entries: list[bytes], a: int, b: int) -> None:
    entries[a], entries[b] = entries[b], entries[a]


def codes_after(trail: SyntheticTrail, ctx: Ctx, edit: Edit) -> set[str]:
    edited = copy_of(trail)
    edit(edited, ctx)
    return {v.code for v in Verifier(edited, workers=1).verify().violations}


# ---- completeness -------------------------------------------------------------------------------


def test_every_code_has_a_row() -> None:
    covered = set().union(*(codes for _, _, codes, _ in TABLE))
    assert set(verify.VIOLATION_CODES) - covered == set(), "codes without a row in TABLE"
    assert covered <= set(verify.VIOLATION_CODES)


def test_every_emitted_code_is_registered() -> None:
    """Codes written in the verifier's source (``Violation(n, "code", ...)``, the signature codes)
    and every rule error a release check can return are in the registry."""
    source = Path(verify.__file__).read_text() + Path(_sigcheck.__file__).read_text()
    emitted = set(re.findall(r'Violation\(\s*\d,\s*"([a-z_]+)"', source))
    emitted |= set(re.findall(r'^[A-Z]+ = "(signature_[a-z_]+)"', source, re.MULTILINE))
    assert emitted and emitted <= set(verify.VIOLATION_CODES)
    checks = "".join(
        inspect.getsource(f) for f in (rules.check_release, rules._grant_release_error, rules.check_emergency_release)
    )
    errors = set(re.findall(r'"(ConsentLedger[A-Za-z]+)"', checks)) - {
        "ConsentLedgerNotGrantee",
        "ConsentLedgerMalleableSignature",
        "ConsentLedgerInvalidSignature",
    }  # signature failures are check 2's
    assert errors == set(verify.RULE_CODES)
    for error, code in verify.RULE_CODES.items():
        assert verify.VIOLATION_CODES[code] == 1, error


# ---- on a synthetic trail -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_base() -> tuple[SyntheticTrail, Ctx]:
    trail = synthetic.build(120, grantees=3, subjects=5, grants=10, checkpoint_every=50, texts=10, seed=11)
    resource = next(str(e.args["resource"]) for e in trail.events_list if e.name == "ResourceRegistered")
    subject = next(
        str(e.args["account"]) for e in trail.events_list if e.name == "MemberOnboarded" and e.args["roles"] == 16
    )
    g1 = synthetic.append_grant_release(trail, resources=[resource], resource=resource)
    g2 = synthetic.append_grant_release(trail, resource=resource, grant_id=trail.events_list[g1].args["grantId"])
    em, _ = synthetic.add_emergency(trail, resource=resource, subject=subject)
    n = len(trail.entries)
    return trail, Ctx(g1=g1, g2=g2, e1=n - 3, e2=n - 2, em=em, e_em=n - 1)


def test_the_synthetic_base_verifies(synthetic_base: tuple[SyntheticTrail, Ctx]) -> None:
    trail, _ = synthetic_base
    report = Verifier(copy_of(trail), workers=1).verify()
    assert report.ok, report.violations
    assert (report.releases, report.emergency_releases) == (122, 1)


@pytest.mark.parametrize(("name", "edit", "expected", "_emergency"), TABLE, ids=[row[0] for row in TABLE])
def test_synthetic(
    synthetic_base: tuple[SyntheticTrail, Ctx], name: str, edit: Edit, expected: set[str], _emergency: bool
) -> None:
    trail, ctx = synthetic_base
    assert codes_after(trail, ctx, edit) == expected


# ---- on a real chain ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain_base(anvil: Any, compiled: CompilationResult) -> tuple[SyntheticTrail, Ctx]:
    """Two releases under one grant on anvil, the second sent through ReleaseForwarder; the trail read
    over RPC (events carry the signed requests) into an editable list, with a matching vault log."""
    from tests.conftest import deploy_fresh

    deployed: Deployed = deploy_fresh(anvil, compiled)
    world = make_world(deployed)
    ledger = world.ledger
    terms, grant_id = world.grant(resources=(ID_CARD, TAX))
    world.release(terms, grant_id, ID_CARD)
    forwarder = _deploy_forwarder(deployed, compiled)
    request_id, deadline, signature = world.release_request(grant_id, TAX, request_id=new_request_ids(1)[0])
    data = ledger.encode(ledger.consent.functions.recordRelease(terms.as_tuple(), TAX, request_id, deadline, signature))
    deployed.transactor_for(deployed.admin).transact(forwarder.functions.forward(ledger.consent.address, data))

    rpc = RpcTrail(ledger, log_entries=lambda: [])
    head = rpc.head()
    events = list(rpc.events(head))
    trail = SyntheticTrail(
        events_list=events,
        transactions_list=[(0, h, d) for h, d in rpc.transactions(0, head)],
        entries=[],
        texts=["370100-housing"],
        head_block=head,
        keys={world.dept.address: bytes(world.dept.key), world.other_dept.address: bytes(world.other_dept.key)},
        eip712_domain=ledger.domain(),
    )
    releases = [i for i, e in enumerate(events) if e.name == "ReleaseRecorded"]
    assert len(releases) == 2
    for i in releases:
        e = events[i]
        synthetic.log_release(trail, e, "grant", str(e.args["grantId"]), world.citizen.address)
    trail.transactions_list = [(0, h, d) for h, d in rpc.transactions(0, head)]  # the chain's, not the log helper's
    return trail, Ctx(g1=releases[0], g2=releases[1], e1=0, e2=1)


def _deploy_forwarder(deployed: Deployed, compiled: CompilationResult) -> Any:
    contract = compiled.contracts["ReleaseForwarder"]
    w3 = deployed.node.w3
    factory = w3.eth.contract(abi=contract.abi, bytecode=contract.bytecode)
    admin: LocalAccount = deployed.admin
    receipt = deployed.transactor_for(admin).transact(factory.constructor())
    return w3.eth.contract(address=receipt.contract_address, abi=contract.abi)  # type: ignore[attr-defined]


def test_a_forwarded_release_verifies_from_its_event(chain_base: tuple[SyntheticTrail, Ctx]) -> None:
    """L2: the forwarded release's top-level calldata is the forwarder's, yet check 2 passes."""
    trail, ctx = chain_base
    report = Verifier(copy_of(trail), workers=1).verify()
    assert report.ok, report.violations
    assert (report.releases, report.signatures_checked, report.log_entries) == (2, 2, 2)
    assert trail.events_list[ctx.g1].tx_hash != trail.events_list[ctx.g2].tx_hash


CHAIN_ROWS = [row for row in TABLE if not row[3]]


@pytest.mark.parametrize(("name", "edit", "expected", "_emergency"), CHAIN_ROWS, ids=[row[0] for row in CHAIN_ROWS])
def test_real_chain(
    chain_base: tuple[SyntheticTrail, Ctx], name: str, edit: Edit, expected: set[str], _emergency: bool
) -> None:
    trail, ctx = chain_base
    assert codes_after(trail, ctx, edit) == expected
