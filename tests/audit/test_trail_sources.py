"""audit.trail's sources and filters against stand-ins for the node and the index (no chain, no database).

What each source asks of the node or the index, and what it gives verification: events in chain order
with their block's time, the calldata of transactions to the ledger's contracts only, the proof of a
v1 release event, the index's cursor, the trail's filters. tests/audit/test_audit_index.py checks the
same sources against a real chain and index.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from audit import trail
from audit.trail import TRAIL_EVENTS, VERIFY_EVENTS, Auditor, IndexTrail, RpcTrail
from audit.verify import TrailEvent

CONSENT = "0x00000000000000000000000000000000000000Cc"
ANCHOR = "0x00000000000000000000000000000000000000aA"
OTHER = "0x00000000000000000000000000000000000000bB"
CITIZEN = "0x1111111111111111111111111111111111111111"
DEPT = "0x2222222222222222222222222222222222222222"
CLINIC = "0x3333333333333333333333333333333333333333"
CARD = "0x" + "c1" * 32
TAX = "0x" + "7a" * 32
GRANT = "0x" + "01" * 32
OTHER_GRANT = "0x" + "02" * 32
EMERGENCY = "0x" + "0e" * 32
DEPLOY_BLOCK = 5


def tx(n: int) -> bytes:
    return bytes([n]) * 32


def raw(name: str, block: int, log_index: int, n: int, **args: Any) -> SimpleNamespace:
    """An event as web3 decodes it."""
    return SimpleNamespace(event=name, blockNumber=block, logIndex=log_index, transactionHash=tx(n), args=args)


#: The chain: a grant and its release, a grant to another grantee, a pause and a revocation of
#: it, an emergency and its release, a member, a checkpoint; in chain order (the node below answers
#: one event name at a time, so a source must sort them).
RAW = [
    raw("MemberOnboarded", 6, 0, 1, account=DEPT, roles=4),
    raw("GrantRecorded", 7, 1, 2, grantId=GRANT, subject=CITIZEN, grantee=DEPT, resources=[CARD, TAX], validUntil=9),
    raw("ReleaseRecorded", 8, 0, 3, grantId=GRANT, grantee=DEPT, resource=CARD, deadline=2**70, signature=b"\x01\x02"),
    raw("GrantRecorded", 8, 2, 4, grantId=OTHER_GRANT, subject=CITIZEN, grantee=CLINIC, resources=[TAX]),
    raw("GrantPauseChanged", 9, 0, 5, grantId=OTHER_GRANT, paused=True),
    raw("GrantRevoked", 10, 0, 6, grantId=OTHER_GRANT, subject=CITIZEN),
    raw("EmergencyProposed", 10, 3, 7, emergencyId=EMERGENCY, resources=[CARD], consumers=[CLINIC]),
    raw("EmergencyReleaseRecorded", 11, 0, 8, emergencyId=EMERGENCY, consumer=CLINIC, subject=CITIZEN, resource=CARD),
    raw("CheckpointAnchored", 12, 0, 9, treeSize=1, rootHash=b"\xaa" * 32),
]
ORDER = [(e.event, e.blockNumber, e.logIndex) for e in RAW]


class FakeLedger:
    """What RpcTrail reads of chain_client.Ledger, recording the questions."""

    def __init__(self) -> None:
        self.deployment = SimpleNamespace(deploy_block=DEPLOY_BLOCK)
        self.consent = SimpleNamespace(
            address=CONSENT, functions=SimpleNamespace(emergencyThreshold=lambda: "emergencyThreshold()")
        )
        self.anchor = SimpleNamespace(address=ANCHOR)
        self.tx = SimpleNamespace(call=self._call)
        self.calls: list[str] = []
        self.asked: list[tuple[str, int, int]] = []
        self.timestamps: list[int] = []
        self.blocks: list[int] = []
        self.w3 = SimpleNamespace(eth=SimpleNamespace(get_block=self._get_block))
        self.by_block: dict[int, list[Any]] = {}

    def _call(self, call: str) -> str:
        self.calls.append(call)
        return "3"

    def head_block(self) -> int:
        return 12

    def domain(self) -> str:
        return "the domain"

    def events(self, name: str, *, from_block: int, to_block: int) -> list[Any]:
        self.asked.append((name, from_block, to_block))
        return [e for e in RAW if e.event == name and from_block <= e.blockNumber <= to_block]

    def block_timestamp(self, number: int) -> int:
        self.timestamps.append(number)
        return 1_000 + number

    def _get_block(self, number: int, *, full_transactions: bool) -> dict[str, Any]:
        assert full_transactions
        self.blocks.append(number)
        return {"transactions": self.by_block.get(number, [])}


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


def rpc(ledger: FakeLedger, **kwargs: Any) -> RpcTrail:
    return RpcTrail(ledger, log_entries=lambda: [b"entry"], **kwargs)  # type: ignore[arg-type]


# ---- RpcTrail -----------------------------------------------------------------------------------


def test_rpc_trail_reads_the_node(ledger: FakeLedger) -> None:
    source = rpc(ledger, private_texts=lambda: ["Citizen Zhang"])
    assert (source.head(), source.domain(), source.emergency_threshold()) == (12, "the domain", 3)
    assert ledger.calls == ["emergencyThreshold()"]
    assert source.log_entries() == [b"entry"] and source.private_texts() == ["Citizen Zhang"]
    assert rpc(ledger).private_texts() == []


def test_rpc_events_in_chain_order_with_their_block_time(ledger: FakeLedger) -> None:
    events = list(rpc(ledger).events(10))
    assert [(e.name, e.block_number, e.log_index) for e in events] == [o for o in ORDER if o[1] <= 10]
    assert ledger.asked == [(name, DEPLOY_BLOCK, 10) for name in VERIFY_EVENTS]
    assert [e.timestamp for e in events] == [1_006, 1_007, 1_008, 1_008, 1_009, 1_010, 1_010]
    assert ledger.timestamps == [6, 7, 8, 9, 10]  # one read per block
    release = events[2]
    assert release == TrailEvent(
        "ReleaseRecorded",
        8,
        0,
        "0x" + "03" * 32,
        1_008,
        {"grantId": GRANT, "grantee": DEPT, "resource": CARD, "deadline": str(2**70), "signature": "0x0102"},
    )


def test_rpc_transactions_to_the_ledgers_contracts_only(ledger: FakeLedger) -> None:
    ledger.by_block = {
        4: [{"hash": tx(40), "to": CONSENT, "input": b"\x04"}],  # before the deployment block
        5: [{"hash": tx(50), "to": CONSENT.lower(), "input": b"\x05"}, tx(51)],  # a bare hash is skipped
        6: [
            {"hash": tx(60), "to": None, "input": b"\x06"},  # a contract creation
            {"hash": tx(61), "to": OTHER, "input": b"\x61"},
            {"hash": tx(62), "to": ANCHOR.upper().replace("0X", "0x"), "input": b"\x62"},
        ],
        7: [{"hash": tx(70), "input": b"\x07"}],
        8: [{"hash": tx(80), "to": CONSENT, "input": b"\x08"}],
    }
    found = list(rpc(ledger).transactions(3, 7))
    assert found == [("0x" + "32" * 32, b"\x05"), ("0x" + "3e" * 32, b"\x62")]
    assert ledger.blocks == [5, 6, 7]
    assert list(rpc(ledger).transactions(8, 8)) == [("0x" + "50" * 32, b"\x08")]


# ---- IndexTrail ---------------------------------------------------------------------------------


@dataclass
class Stored:
    event: str
    block_number: int
    log_index: int
    tx_hash: str
    block_timestamp: int | None
    args: dict[str, Any]
    signature: str | None = None
    deadline: int | None = None


class FakeIndexer:
    """What IndexTrail and Auditor read of chain_client.indexer.Indexer, recording the questions."""

    def __init__(self, ledger: FakeLedger, cursor: int | None = 11) -> None:
        self.ledger = ledger
        self.number = cursor
        self.stored: list[Stored] = []
        self.asked: list[Any] = []
        self.store = SimpleNamespace(stream=self._stream, count=self._count)
        self.rows: list[Any] = []

    def cursor(self) -> Any:
        return None if self.number is None else SimpleNamespace(number=self.number, hash="0x")

    def _stream(self, events: Any, to_block: int) -> Iterator[Stored]:
        self.asked.append(("stream", events, to_block))
        yield from self.stored

    def _count(self, events: Any, to_block: int) -> int:
        self.asked.append(("count", events, to_block))
        return 42

    def transactions(self, *, from_block: int, to_block: int) -> list[Any]:
        self.asked.append(("transactions", from_block, to_block))
        return [SimpleNamespace(hash="0xab", input="0x0a0b"), SimpleNamespace(hash="0xcd", input="0x")]

    def events(self, *, event: Any, to_block: int, subject: str | None) -> list[Any]:
        self.asked.append(("events", event, to_block, subject))
        return [row for row in self.rows if row.block_number <= to_block]


def index(ledger: FakeLedger, cursor: int | None = 11) -> tuple[IndexTrail, FakeIndexer]:
    indexer = FakeIndexer(ledger, cursor)
    return IndexTrail(indexer, log_entries=lambda: [b"entry"]), indexer  # type: ignore[arg-type]


def test_index_trail_head_is_the_cursor(ledger: FakeLedger) -> None:
    assert index(ledger)[0].head() == 11
    assert index(ledger, cursor=None)[0].head() == DEPLOY_BLOCK - 1  # nothing indexed yet


def test_index_trail_asks_the_node_for_the_threshold_once(ledger: FakeLedger) -> None:
    source, _ = index(ledger)
    assert source.emergency_threshold() == 3 and source.emergency_threshold() == 3
    assert ledger.calls == ["emergencyThreshold()"]
    assert source.domain() == "the domain" and source.log_entries() == [b"entry"] and source.private_texts() == []


def test_index_trail_events_carry_a_v1_release_proof(ledger: FakeLedger) -> None:
    source, indexer = index(ledger)
    v2 = {"grantId": GRANT, "deadline": 7, "signature": "0x01"}
    indexer.stored = [
        Stored("ReleaseRecorded", 8, 0, "0xaa", 1_008, {"grantId": GRANT}, signature="0x0102", deadline=99),  # v1
        Stored("ReleaseRecorded", 9, 1, "0xbb", 1_009, v2, signature="0x0304", deadline=5),  # v2: its own
        Stored("GrantRecorded", 9, 2, "0xcc", None, {"grantId": GRANT}),  # no proof, no timestamp
    ]
    events = list(source.events(9))
    assert indexer.asked == [("stream", VERIFY_EVENTS, 9)]
    assert events == [
        TrailEvent("ReleaseRecorded", 8, 0, "0xaa", 1_008, {"grantId": GRANT, "deadline": 99, "signature": "0x0102"}),
        TrailEvent("ReleaseRecorded", 9, 1, "0xbb", 1_009, v2),
        TrailEvent("GrantRecorded", 9, 2, "0xcc", 0, {"grantId": GRANT}),
    ]
    assert indexer.stored[0].args == {"grantId": GRANT}  # the stored row is not changed


def test_index_trail_transactions(ledger: FakeLedger) -> None:
    source, indexer = index(ledger)
    assert list(source.transactions(3, 9)) == [("0xab", b"\x0a\x0b"), ("0xcd", b"")]
    assert indexer.asked == [("transactions", 3, 9)]
    assert ledger.blocks == []


# ---- Auditor ------------------------------------------------------------------------------------


def auditor(ledger: FakeLedger, indexer: FakeIndexer | None = None, **kwargs: Any) -> Auditor:
    return Auditor(ledger=ledger, log_entries=lambda: [b"entry"], indexer=indexer, **kwargs)  # type: ignore[arg-type]


def test_the_auditor_reads_the_index_when_it_has_one(ledger: FakeLedger) -> None:
    plain = auditor(ledger, private_texts=lambda: ["x"])
    assert type(plain.source) is RpcTrail and plain.source is plain.rpc and plain.head() == 12
    assert plain.event_count(10) is None and plain.source.private_texts() == ["x"]
    assert plain.source.log_entries() == [b"entry"]  # the release log verification compares with the chain
    indexer = FakeIndexer(ledger)
    indexed = auditor(ledger, indexer, private_texts=lambda: ["y"])
    assert isinstance(indexed.source, IndexTrail) and indexed.head() == 11
    assert indexed.source.private_texts() == ["y"] and indexed.rpc.private_texts() == ["y"]
    assert indexed.source.log_entries() == [b"entry"]
    assert indexed.event_count(10) == 42 and indexer.asked == [("count", VERIFY_EVENTS, 10)]


@pytest.mark.parametrize(("to_block", "end"), [(None, 12), (9, 9), (20, 12), (12, 12)])
def test_verify_stops_at_the_sources_head(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch, to_block: int | None, end: int
) -> None:
    made: list[Any] = []

    class Recorder:
        def __init__(self, source: Any, *, workers: int | None = None) -> None:
            made.append((source, workers))

        def verify(self, **kwargs: Any) -> str:
            made.append(kwargs)
            return "report"

    monkeypatch.setattr(trail, "Verifier", Recorder)
    audit = auditor(ledger, workers=3)
    progress = print
    assert audit.verify(from_block=2, to_block=to_block, progress=progress) == "report"
    assert made == [(audit.source, 3), {"from_block": 2, "to_block": end, "progress": progress}]


def test_the_trail_over_rpc_filters(ledger: FakeLedger) -> None:
    audit = auditor(ledger)
    everything = audit.trail()
    assert [(e["event"], e["block_number"], e["log_index"]) for e in everything] == [
        o for o in ORDER if o[0] in TRAIL_EVENTS
    ]
    assert len(everything) == 7
    assert everything[1] == {
        "event": "ReleaseRecorded",
        "block_number": 8,
        "log_index": 0,
        "tx_hash": "0x" + "03" * 32,
        "args": {"grantId": GRANT, "grantee": DEPT, "resource": CARD, "deadline": str(2**70), "signature": "0x0102"},
    }
    assert {name for name, _, _ in ledger.asked} == set(TRAIL_EVENTS)
    assert all(to == 12 for _, _, to in ledger.asked)

    def events(**kwargs: Any) -> list[tuple[str, int]]:
        return [(e["event"], e["block_number"]) for e in audit.trail(**kwargs)]

    # the subject of a release, pause and revocation is its grant's; an emergency names none
    assert events(subject=CITIZEN.lower()) == [
        ("GrantRecorded", 7),
        ("ReleaseRecorded", 8),
        ("GrantRecorded", 8),
        ("GrantPauseChanged", 9),
        ("GrantRevoked", 10),
        ("EmergencyReleaseRecorded", 11),
    ]
    assert events(subject=DEPT) == []
    # the grantee of a pause and a revocation is its grant's; an emergency release's is its consumer
    assert events(grantee=CLINIC.lower()) == [
        ("GrantRecorded", 8),
        ("GrantPauseChanged", 9),
        ("GrantRevoked", 10),
        ("EmergencyReleaseRecorded", 11),
    ]
    assert events(grantee=DEPT) == [("GrantRecorded", 7), ("ReleaseRecorded", 8)]
    # a release by its resource, a grant and an emergency by the resources they name, a pause by its grant's
    assert events(resource=bytes.fromhex(TAX[2:])) == [
        ("GrantRecorded", 7),
        ("GrantRecorded", 8),
        ("GrantPauseChanged", 9),
        ("GrantRevoked", 10),
    ]
    assert events(resource=bytes.fromhex(CARD[2:])) == [
        ("GrantRecorded", 7),
        ("ReleaseRecorded", 8),
        ("EmergencyProposed", 10),
        ("EmergencyReleaseRecorded", 11),
    ]
    assert events(from_block=9, to_block=10) == [
        ("GrantPauseChanged", 9),
        ("GrantRevoked", 10),
        ("EmergencyProposed", 10),
    ]
    assert events(from_block=8, to_block=8, grantee=CLINIC) == [("GrantRecorded", 8)]
    assert events(subject=CITIZEN, grantee=DEPT, resource=bytes.fromhex(TAX[2:])) == [("GrantRecorded", 7)]
    assert events(to_block=50)[-1] == ("EmergencyReleaseRecorded", 11)  # no further than the head
    assert ledger.asked[-1][2] == 12


def test_the_trail_over_the_index(ledger: FakeLedger) -> None:
    indexer = FakeIndexer(ledger, cursor=10)
    audit = auditor(ledger, indexer)
    indexer.rows = [
        Stored(e.event, e.blockNumber, e.logIndex, "0x" + e.transactionHash.hex(), None, trail.jsonable(e.args))
        for e in RAW
        if e.event in TRAIL_EVENTS and e.blockNumber <= 10
    ]
    by_index = audit.trail(subject=CITIZEN.lower(), to_block=30)
    assert indexer.asked[-1] == ("events", TRAIL_EVENTS, 10, CITIZEN)  # the subject in EIP-55, to the cursor
    assert ledger.asked == []  # nothing over RPC
    assert by_index == auditor(ledger).trail(subject=CITIZEN, to_block=10) and len(by_index) == 5
    rows = audit.trail(to_block=9, from_block=8)
    assert indexer.asked[-1] == ("events", TRAIL_EVENTS, 9, None)
    assert [(e["event"], e["block_number"], e["log_index"], e["tx_hash"]) for e in rows] == [
        ("ReleaseRecorded", 8, 0, "0x" + "03" * 32),
        ("GrantRecorded", 8, 2, "0x" + "04" * 32),
        ("GrantPauseChanged", 9, 0, "0x" + "05" * 32),
    ]
    assert rows[2]["args"] == {"grantId": OTHER_GRANT, "paused": True}


def test_an_event_of_a_grant_outside_the_trail_names_no_resource(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revocation or pause of a grant the trail never saw recorded (the ledger lets a subject
    revoke a signed grant before anyone records it) has no resources: a resource filter leaves it
    out, the other filters still see it."""
    unknown = "0x" + "0f" * 32
    extra = [
        raw("GrantRevoked", 11, 1, 10, grantId=unknown, subject=CITIZEN),
        raw("GrantPauseChanged", 11, 2, 11, grantId=unknown, paused=True),
    ]
    monkeypatch.setattr(sys.modules[__name__], "RAW", RAW + extra)
    audit = auditor(ledger)
    events = [(e["event"], e["args"].get("grantId")) for e in audit.trail()]
    assert ("GrantRevoked", unknown) in events and ("GrantPauseChanged", unknown) in events
    by_card = [(e["event"], e["args"].get("grantId")) for e in audit.trail(resource=bytes.fromhex(CARD[2:]))]
    assert all(grant != unknown for _, grant in by_card) and by_card
    by_citizen = [e["args"].get("grantId") for e in audit.trail(subject=CITIZEN)]
    assert unknown in by_citizen


def test_the_grantee_filter_reads_the_grantee_an_event_names(
    ledger: FakeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release names its grantee itself: the grantee filter matches what the event says, also for a
    release of a grant the trail never saw recorded (whose grantee the trail cannot look up)."""
    unknown = "0x" + "0f" * 32
    extra = [raw("ReleaseRecorded", 11, 1, 10, grantId=unknown, grantee=DEPT, resource=CARD)]
    monkeypatch.setattr(sys.modules[__name__], "RAW", RAW + extra)
    audit = auditor(ledger)

    def events(**kwargs: Any) -> list[tuple[str, int]]:
        return [(e["event"], e["block_number"]) for e in audit.trail(**kwargs)]

    assert events(grantee=DEPT) == [("GrantRecorded", 7), ("ReleaseRecorded", 8), ("ReleaseRecorded", 11)]
    assert ("ReleaseRecorded", 11) not in events(grantee=CLINIC)
