"""Differential test: random operation sequences against ConsentLedger on anvil AND against audit.rules.

Hypothesis draws short sequences of operations — grants (named, wildcard and sensitive resources,
bad windows, reused nonces, expired deadlines, wrong and malleable signatures), revocations
(recorded and pre-emptive), sequenced pauses and resumes, suspensions and reinstatements, catalog
registrations and sensitivity changes, time moves, emergencies (proposals, approvals by the right
and wrong roles, tampered terms, cancellations, windows opening too late) and single, grouped and
emergency releases — and applies each to the contract and to :mod:`audit.rules`; every outcome
(recorded, or the contract's error name; for a grouped release item by item) must be the same.

Cost per sequence is kept small: one deployment per run, ``evm_snapshot``/``evm_revert`` between
sequences, raw JSON-RPC calls from an impersonated ADMIN (no gas estimation), signatures with
coincurve over hand-encoded EIP-712 structs. Every operation but a grouped release goes through
``multicall`` so that a refusal is a ``CallFailed`` event with the error, not a reverted
transaction. ``QCL_DIFF_EXAMPLES`` sets the number of sequences (default 150; the issue's figure
is 2,000: ``QCL_DIFF_EXAMPLES=2000``).

``QCL_DIFF_RECORD=<file>`` also writes every sequence run with the contract's outcomes, and the
deployment facts the model needs, to ``<file>`` (JSON): ``tests/audit/data/rules_golden.json`` is
such a recording, which test_rules_replay.py replays against :mod:`audit.rules` without a chain
(fast enough to run against every mutant in ``make mutation``). Re-record it when the contract
changes: ``QCL_DIFF_RECORD=tests/audit/data/rules_golden.json QCL_DIFF_EXAMPLES=300 pytest -p
no:randomly tests/audit/test_rules_differential.py``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from coincurve import PrivateKey
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from audit import rules
from audit.rules import Sig
from chain_client import CompilationResult, Node, Role, deploy, start_node
from chain_client._revert import RevertDecoder
from chain_client._tx import Transactor

TALLY: Counter[str] = Counter()
RECORD = os.environ.get("QCL_DIFF_RECORD")  # a file: the sequences and the contract's outcomes go there
RECORDING: dict[str, Any] = {"world": None, "sequences": []}
EXAMPLES = int(os.environ.get("QCL_DIFF_EXAMPLES", "150"))
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GAS = 3_000_000
GARBAGE_SIGNATURE = bytes(64) + b"\x1b"  # r = 0: recovers no one


def _key(name: str) -> PrivateKey:
    return PrivateKey(keccak(text=f"qcl-rules-differential/{name}"))


def _address(key: PrivateKey) -> str:
    return str(to_checksum_address(keccak(key.public_key.format(compressed=False)[1:])[-20:]))


NAMES = ("admin", "admin2", "a1", "a2", "s1", "s2", "c1", "c2", "p")
KEYS = {name: _key(name) for name in NAMES}
ADDR = {name: _address(key) for name, key in KEYS.items()}
ROLES = {
    "admin2": Role.ADMIN,
    "s1": Role.SUBJECT,
    "s2": Role.SUBJECT,
    "c1": Role.CONSUMER,
    "c2": Role.CONSUMER,
    "p": Role.PROVIDER,
}


def _rid(code: str) -> str:
    return "0x" + keccak(text=code).hex()


CATALOG = {"R1": 1, "R2": 2, "R3": 3, "R4": 4}  # registered at deployment
NEW = ("N1", "N2")  # registered (or not) during a sequence
RES = {name: _rid(f"diff/{name}") for name in (*CATALOG, *NEW, "RX")} | {"*": rules.WILDCARD_ID}
TYPEHASH = {
    "Grant": keccak(
        text="Grant(address subject,address grantee,bytes32[] resources,bytes32 purpose,uint64 validFrom,"
        "uint64 validUntil,uint32 maxUses,uint256 nonce,uint256 deadline)"
    ),
    "Revoke": keccak(text="Revoke(bytes32 grantId,uint256 nonce,uint256 deadline)"),
    "SetPaused": keccak(text="SetPaused(bytes32 grantId,bool paused,uint64 sequence,uint256 nonce,uint256 deadline)"),
    "ReleaseRequest": keccak(
        text="ReleaseRequest(bytes32 grantId,bytes32 resource,bytes32 requestId,uint256 deadline)"
    ),
    "Emergency": keccak(
        text="Emergency(bytes32 emergencyId,bytes32[] resources,address[] consumers,uint64 validFrom,"
        "uint64 validUntil,bytes32 reason,uint256 deadline)"
    ),
    "EmergencyReleaseRequest": keccak(
        text="EmergencyReleaseRequest(bytes32 emergencyId,address subject,bytes32 resource,bytes32 requestId,"
        "uint256 deadline)"
    ),
    "EmergencyCancel": keccak(text="EmergencyCancel(bytes32 emergencyId,uint256 deadline)"),
}
PURPOSE = keccak(text="diff/purpose")
REQUESTS = [("0x" + keccak(text=f"diff/request/{n}").hex()) for n in range(6)]
EMERGENCIES = [("0x" + keccak(text=f"diff/emergency/{n}").hex()) for n in range(2)]


def _b32(hex32: str) -> bytes:
    return bytes.fromhex(hex32[2:])


def _word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


# ---- the chain side -----------------------------------------------------------------------------


class Chain:
    """One deployment on its own anvil, driven with raw JSON-RPC calls from the impersonated ADMIN."""

    def __init__(self, node: Node, compiled: CompilationResult) -> None:
        self.node, self.w3 = node, node.w3
        admin = _account("admin")
        node.fund(admin.address)
        decoder = RevertDecoder([c.abi for c in compiled.contracts.values()])
        deployment = deploy(
            Transactor(w3=self.w3, account=admin, decoder=decoder),
            compiled,
            admin=admin.address,
            auditors=[ADDR["a1"], ADDR["a2"]],
            emergency_threshold=2,
        )
        self.address = deployment.contracts["ConsentLedger"]
        abi = compiled.contracts["ConsentLedger"].abi
        self.contract = self.w3.eth.contract(address=self.address, abi=abi)
        self.errors = {
            keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]: e["name"]
            for c in compiled.contracts.values()
            for e in c.abi
            if e["type"] == "error"
        }
        self.topics = {
            name: "0x" + keccak(text=sig).hex()
            for name, sig in {
                "CallFailed": "CallFailed(uint256,bytes)",
                "ReleaseRejected": "ReleaseRejected(uint256,bytes32,bytes4)",
                "ReleaseRecorded": "ReleaseRecorded(bytes32,address,bytes32,bytes32,uint32,uint256,bytes)",
            }.items()
        }
        self._rpc("anvil_impersonateAccount", [ADDR["admin"]])
        self.separator = bytes(self.contract.functions.domainSeparator().call())
        self.time = int(self.w3.eth.get_block("latest")["timestamp"]) + 100

    def _rpc(self, method: str, params: list[Any]) -> Any:
        answer = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def data(self, fn: str, *args: Any) -> bytes:
        return bytes.fromhex(self.contract.encode_abi(fn, args=list(args))[2:])

    def send(self, data: bytes, at: int) -> dict[str, Any]:
        """Mine one transaction of the ADMIN at time ``at``; its receipt."""
        self._rpc("evm_setNextBlockTimestamp", [at])
        tx = {"from": ADDR["admin"], "to": self.address, "data": "0x" + data.hex(), "gas": hex(GAS)}
        tx_hash = self._rpc("eth_sendTransaction", [tx])
        receipt = self._rpc("eth_getTransactionReceipt", [tx_hash])
        while receipt is None:  # automine answers before the block is stored, now and then
            time.sleep(0.001)
            receipt = self._rpc("eth_getTransactionReceipt", [tx_hash])
        assert receipt["status"] == "0x1", receipt
        return dict(receipt)

    def call(self, data: bytes, at: int) -> str | None:
        """One call through ``multicall``: None, or the error it was refused with."""
        receipt = self.send(self.data("multicall", [data]), at)
        for log in receipt["logs"]:
            if log["topics"][0] == self.topics["CallFailed"]:
                (reason,) = decode(["bytes"], bytes.fromhex(log["data"][2:]))
                return self.errors.get(bytes(reason[:4]), "0x" + bytes(reason).hex())
        return None

    def releases(self, items: list[tuple[Any, ...]], at: int) -> list[str | None]:
        """``recordReleases``: each item's outcome (``"skipped"`` for one refused for its signature)."""
        receipt = self.send(self.data("recordReleases", items), at)
        logs = list(receipt["logs"])
        out: list[str | None] = []
        for i, item in enumerate(items):
            log = logs[0] if logs else None
            if (
                log is not None
                and log["topics"][0] == self.topics["ReleaseRejected"]
                and int(log["topics"][1], 16) == i
            ):
                out.append(self.errors[bytes.fromhex(log["data"][2:10])])
                logs.pop(0)
            elif log is not None and log["topics"][0] == self.topics["ReleaseRecorded"] and _recorded(log, item):
                out.append(None)
                logs.pop(0)
            else:
                out.append("skipped")
        assert not logs, logs
        return out

    def snapshot(self) -> str:
        return str(self._rpc("evm_snapshot", []))

    def revert(self, snapshot: str) -> None:
        assert self._rpc("evm_revert", [snapshot]) is True


def _recorded(log: dict[str, Any], item: tuple[Any, ...]) -> bool:
    """The ``ReleaseRecorded`` log is item's (same resource, request id, deadline and signature)."""
    _grant, resource, request_id, deadline, signature = item
    request, _uses, logged_deadline, logged_signature = decode(
        ["bytes32", "uint32", "uint256", "bytes"], bytes.fromhex(log["data"][2:])
    )
    return (
        log["topics"][3] == "0x" + resource.hex()
        and request == request_id
        and logged_deadline == deadline
        and logged_signature == signature
    )


def _account(name: str) -> Any:
    from eth_account import Account

    return Account.from_key(KEYS[name].secret)


# ---- signing ------------------------------------------------------------------------------------


def _sign(separator: bytes, struct: bytes, signer: str, sig: Sig) -> bytes:
    """``signer``'s signature of the EIP-712 struct encoding; INVALID: one that recovers no one; MALLEABLE: high s."""
    digest = keccak(b"\x19\x01" + separator + keccak(struct))
    if sig is Sig.INVALID:
        return GARBAGE_SIGNATURE
    raw = KEYS[signer].sign_recoverable(digest, hasher=None)
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64] + 27
    if sig is Sig.MALLEABLE:
        return r + (N - s).to_bytes(32, "big") + bytes([55 - v])
    return r + s.to_bytes(32, "big") + bytes([v])


def _digest(separator: bytes, struct: bytes) -> str:
    return "0x" + keccak(b"\x19\x01" + separator + keccak(struct)).hex()


@dataclass(frozen=True)
class SignedGrant:
    terms: rules.GrantTerms
    nonce: int
    deadline: int
    grant_id: str

    def tuple(self) -> tuple[Any, ...]:
        t = self.terms
        return (
            t.subject,
            t.grantee,
            [_b32(r) for r in t.resources],
            PURPOSE,
            t.valid_from,
            t.valid_until,
            t.max_uses,
            self.nonce,
            self.deadline,
        )

    def struct(self) -> bytes:
        t = self.terms
        return TYPEHASH["Grant"] + encode(
            ["address", "address", "bytes32", "bytes32", "uint64", "uint64", "uint32", "uint256", "uint256"],
            [
                t.subject,
                t.grantee,
                keccak(b"".join(_b32(r) for r in t.resources)),
                PURPOSE,
                t.valid_from,
                t.valid_until,
                t.max_uses,
                self.nonce,
                self.deadline,
            ],
        )


def _emergency_struct(emergency_id: str, t: rules.EmergencyTerms) -> bytes:
    return TYPEHASH["Emergency"] + encode(
        ["bytes32", "bytes32", "bytes32", "uint64", "uint64", "bytes32", "uint256"],
        [
            _b32(emergency_id),
            keccak(b"".join(_b32(r) for r in t.resources)),
            keccak(b"".join(_word(c) for c in t.consumers)),
            t.valid_from,
            t.valid_until,
            keccak(text=t.reason),
            t.deadline,
        ],
    )


def _emergency_tuple(emergency_id: str, t: rules.EmergencyTerms) -> tuple[Any, ...]:
    return (
        _b32(emergency_id),
        [_b32(r) for r in t.resources],
        list(t.consumers),
        t.valid_from,
        t.valid_until,
        keccak(text=t.reason),
        t.deadline,
    )


# ---- operations -------------------------------------------------------------------------------


def often(usual: Any, *rare: Any, weight: int = 6) -> st.SearchStrategy[Any]:
    """``usual`` most of the time (so that sequences get far), now and then one of ``rare``."""
    return st.sampled_from([usual] * weight + list(rare))


sigs = often(Sig.OK, Sig.INVALID, Sig.MALLEABLE, weight=12)
deadlines = often(10_000, -1, 0)  # offsets from the operation's time: expired, the last second
resources = st.sampled_from(sorted(RES))
#: A resource of a release: the k-th of its grant's (or emergency's) list, or any by name.
targets = st.one_of(st.integers(0, 2), st.integers(0, 2), resources)
members = st.sampled_from(["s1", "s2", "c1", "c2", "admin2", "a1", "a2"])
approvers = st.sampled_from(["admin", "admin", "admin2", "a1", "a1", "a2", "s1"])
nonces = st.integers(0, 3)
refs = st.integers(0, 7)
requests = st.integers(0, len(REQUESTS) - 1)
release_items = st.tuples(refs, targets, requests, deadlines, sigs)

GRANT = st.tuples(
    st.just("grant"),
    often("s1", "s2", "s2", "c1"),
    often("c1", "c2", "c2", "s2"),
    st.lists(often("R1", "R2", "R3", "R4", "*", "*", "N1", "RX"), min_size=1, max_size=3, unique=True) | st.just([]),
    st.sampled_from([-100, 0, 0, 50]),
    often(100_000, 0, 30, 5_000),
    st.sampled_from([0, 0, 1, 2]),
    nonces,
    deadlines,
    sigs,
)
#: A grant that the contract mostly records (named, wildcard and sensitive resources, short windows, use caps).
GOOD_GRANT = st.tuples(
    st.just("grant"),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["c1", "c2"]),
    st.lists(st.sampled_from(["R1", "R2", "R3", "R4", "*"]), min_size=1, max_size=3, unique=True),
    often(0, -100, 50),
    often(100_000, 30),
    st.sampled_from([0, 0, 1, 2]),
    st.integers(0, 15),
    st.just(10_000),
    st.just(Sig.OK),
)
PROPOSE = st.tuples(
    st.just("propose"),
    st.integers(0, 1),
    st.lists(often("R1", "R3", "R4", "N1", "RX"), min_size=1, max_size=2, unique=True) | st.just([]),
    st.lists(often("c1", "c2", "s1"), min_size=1, max_size=2, unique=True) | st.just([]),
    often(0, -10, 600, 7_200),
    often(3_600, 600, 72 * 3600 + 1),
    approvers,
    deadlines,
    sigs,
)
#: A proposal by an ADMIN and an AUDITOR's approval (each may still fail: time, scope, members).
EMERGENCY_SETUP = st.tuples(
    st.tuples(
        st.just("propose"),
        often(0, 1),
        st.lists(often("R1", "R3", "R4"), min_size=1, max_size=2, unique=True),
        st.lists(often("c1", "c2"), min_size=1, max_size=2, unique=True),
        often(0, -10, 600, 7_200),
        often(3_600, 600),
        often("admin", "admin2"),
        often(10_000, -1),
        often(Sig.OK, Sig.MALLEABLE),
    ),
    st.tuples(
        st.just("approve"),
        st.integers(0, 1),
        often("a1", "a2", "admin2"),
        often(Sig.OK, Sig.INVALID),
        often(False, True),
    ),
).map(lambda pair: (pair[0], (pair[1][0], pair[0][1], *pair[1][2:])))  # the approval names the proposal
OPS = st.one_of(
    GRANT,
    GRANT,
    st.tuples(st.just("revoke"), refs, nonces, deadlines, sigs, st.booleans()),
    st.tuples(st.just("pause"), refs, st.booleans(), st.integers(0, 3), nonces, deadlines, sigs),
    st.tuples(st.just("suspend"), members, st.booleans()),
    st.tuples(
        st.just("role"),
        st.sampled_from(["admin2", "a1", "a2", "s2", "c2"]),
        st.sampled_from([Role.ADMIN, Role.AUDITOR, Role.SUBJECT, Role.CONSUMER, Role.SUBJECT | Role.CONSUMER]).map(int),
    ),
    st.tuples(st.just("register"), st.sampled_from(NEW), often(1, 2, 3, 4, 5)),
    st.tuples(st.just("update"), st.sampled_from(["R1", "R2", "R3", "R4", "N1", "RX"]), st.integers(0, 4)),
    st.tuples(st.just("time"), st.sampled_from([40, 3_000, 7_000, 200_000])),
    PROPOSE,
    st.tuples(st.just("approve"), often(0, 1), approvers, sigs, often(False, True)),
    st.tuples(st.just("cancel"), often(0, 1), approvers, often(10_000, -1), sigs),
    st.tuples(st.just("release"), release_items),
    st.tuples(st.just("release"), release_items),
    st.tuples(st.just("releases"), st.lists(release_items, min_size=1, max_size=4)),
    st.tuples(st.just("releases"), st.lists(release_items, min_size=1, max_size=4)),
    st.tuples(
        st.just("erelease"),
        often(0, 1),
        often("c1", "c2", "s1"),
        often("s1", "s2", "c1"),
        targets,
        requests,
        deadlines,
        sigs,
    ),
    st.tuples(
        st.just("erelease"), st.integers(0, 1), often("c1", "c2"), often("s2", "s1"), targets, requests, deadlines, sigs
    ),
)


@dataclass
class Run:
    """One sequence: the chain, the model, and what was signed so far."""

    chain: Chain
    model: rules.State
    time: int
    block: int
    grants: list[SignedGrant] = field(default_factory=list)
    emergencies: dict[int, rules.EmergencyTerms] = field(default_factory=dict)
    outcomes: list[tuple[str, Any, Any]] = field(default_factory=list)

    def tick(self) -> int:
        """Time and block of the next transaction; the model is set to them."""
        self.time += 1
        self.block += 1
        self.model.timestamp, self.model.block = self.time, self.block
        return self.time

    def check(self, op: str, chain: Any, model: Any) -> None:
        self.outcomes.append((op, chain, model))
        assert chain == model, f"{op}: contract {chain!r}, rules {model!r}; so far {self.outcomes}"

    def grant(self, ref: int) -> SignedGrant:
        """A signed grant: mostly one the contract recorded, sometimes any (refused, never sent)."""
        recorded = [g for g in self.grants if g.grant_id in self.model.grants]
        if recorded and ref < 6:
            return recorded[ref % len(recorded)]
        if self.grants:
            return self.grants[ref % len(self.grants)]
        terms = rules.GrantTerms(ADDR["s1"], ADDR["c1"], (RES["R1"],), 0, 2**40, 0)  # never signed: unknown
        signed = SignedGrant(terms, 99, 2**40, "")
        return SignedGrant(terms, 99, 2**40, _digest(self.chain.separator, signed.struct()))


def _skipped(outcome: str | None) -> str | None:
    return "skipped" if outcome in ("ConsentLedgerNotGrantee", "ConsentLedgerMalleableSignature") else outcome


def do_grant(run: Run, op: tuple[Any, ...]) -> None:
    _, subject, grantee, names, vf, length, max_uses, nonce, dl, sig = op
    at = run.tick()
    terms = rules.GrantTerms(
        ADDR[subject], ADDR[grantee], tuple(RES[n] for n in names), at + vf, at + vf + length, max_uses
    )
    signed = SignedGrant(terms, nonce, at + dl, "")
    signed = SignedGrant(terms, nonce, at + dl, _digest(run.chain.separator, signed.struct()))
    run.grants.append(signed)
    signature = _sign(run.chain.separator, signed.struct(), subject, sig)
    chain = run.chain.call(run.chain.data("recordGrant", signed.tuple(), signature), at)
    run.check("grant", chain, rules.record_grant(run.model, signed.grant_id, terms, nonce, at + dl, sig))


def do_revoke(run: Run, op: tuple[Any, ...]) -> None:
    _, ref, nonce, dl, sig, unrecorded = op
    g = run.grant(ref)
    at = run.tick()
    subject = next(n for n, a in ADDR.items() if a == g.terms.subject)
    struct = TYPEHASH["Revoke"] + encode(["bytes32", "uint256", "uint256"], [_b32(g.grant_id), nonce, at + dl])
    signature = _sign(run.chain.separator, struct, subject, sig)
    if unrecorded:
        data = run.chain.data("revokeUnrecorded", g.tuple(), nonce, at + dl, signature)
    else:
        data = run.chain.data("revoke", _b32(g.grant_id), nonce, at + dl, signature)
    model = rules.revoke(
        run.model, g.grant_id, nonce, at + dl, sig, unrecorded_subject=g.terms.subject if unrecorded else None
    )
    run.check("revoke", run.chain.call(data, at), model)


def do_pause(run: Run, op: tuple[Any, ...]) -> None:
    _, ref, paused, sequence, nonce, dl, sig = op
    g = run.grant(ref)
    at = run.tick()
    subject = next(n for n, a in ADDR.items() if a == g.terms.subject)
    struct = TYPEHASH["SetPaused"] + encode(
        ["bytes32", "bool", "uint64", "uint256", "uint256"], [_b32(g.grant_id), paused, sequence, nonce, at + dl]
    )
    signature = _sign(run.chain.separator, struct, subject, sig)
    data = run.chain.data("setPaused", _b32(g.grant_id), paused, sequence, nonce, at + dl, signature)
    run.check(
        "pause",
        run.chain.call(data, at),
        rules.set_paused(run.model, g.grant_id, paused, sequence, nonce, at + dl, sig),
    )


def do_suspend(run: Run, op: tuple[Any, ...]) -> None:
    _, who, suspended = op
    at = run.tick()
    chain = run.chain.call(run.chain.data("setSuspended", ADDR[who], suspended), at)
    run.check("suspend", chain, rules.set_suspended(run.model, ADDR[who], suspended, by=ADDR["admin"]))


def do_role(run: Run, op: tuple[Any, ...]) -> None:
    """``updateMember``: a demoted approver's approvals stop counting; AUDITOR is never added this way."""
    _, who, roles = op
    at = run.tick()
    key = bytes(32) if roles & Role.CONSUMER else b""
    chain = run.chain.call(run.chain.data("updateMember", ADDR[who], roles, bytes(32), key), at)
    model = rules.update_member(run.model, ADDR[who], roles, key_length=len(key), by=ADDR["admin"])
    run.check("role", chain, model)


def do_register(run: Run, op: tuple[Any, ...]) -> None:
    _, name, sensitivity = op
    at = run.tick()
    chain = run.chain.call(run.chain.data("registerResource", f"diff/{name}", name, ADDR["p"], sensitivity), at)
    run.check("register", chain, rules.register_resource(run.model, RES[name], sensitivity))


def do_update(run: Run, op: tuple[Any, ...]) -> None:
    _, name, sensitivity = op
    at = run.tick()
    chain = run.chain.call(run.chain.data("updateResource", _b32(RES[name]), ADDR["p"], sensitivity), at)
    run.check("update", chain, rules.update_resource(run.model, RES[name], sensitivity))


def do_time(run: Run, op: tuple[Any, ...]) -> None:
    run.time += op[1]


def _emergency_call(run: Run, fn: str, ref: int, terms: rules.EmergencyTerms, approver: str, sig: Sig) -> str | None:
    struct = _emergency_struct(EMERGENCIES[ref], terms)
    signature = _sign(run.chain.separator, struct, approver, sig)
    return run.chain.call(run.chain.data(fn, _emergency_tuple(EMERGENCIES[ref], terms), signature), run.time)


def do_propose(run: Run, op: tuple[Any, ...]) -> None:
    _, ref, names, consumers, vf, length, approver, dl, sig = op
    at = run.tick()
    terms = rules.EmergencyTerms(
        tuple(RES[n] for n in names), tuple(ADDR[c] for c in consumers), at + vf, at + vf + length, f"r{at}", at + dl
    )
    chain = _emergency_call(run, "proposeEmergency", ref, terms, approver, sig)
    model = rules.propose_emergency(run.model, EMERGENCIES[ref], terms, ADDR[approver], sig)
    if model is None or ref not in run.emergencies:
        run.emergencies[ref] = terms
    run.check("propose", chain, model)


def do_approve(run: Run, op: tuple[Any, ...]) -> None:
    _, ref, approver, sig, tamper = op
    at = run.tick()
    terms = run.emergencies.get(ref) or rules.EmergencyTerms((RES["R1"],), (ADDR["c1"],), at, at + 60, "none", at + 60)
    if tamper:
        terms = rules.EmergencyTerms(
            terms.resources, terms.consumers, terms.valid_from, terms.valid_until, "other", terms.deadline
        )
    chain = _emergency_call(run, "approveEmergency", ref, terms, approver, sig)
    run.check("approve", chain, rules.approve_emergency(run.model, EMERGENCIES[ref], terms, ADDR[approver], sig))


def do_cancel(run: Run, op: tuple[Any, ...]) -> None:
    _, ref, by, dl, sig = op
    at = run.tick()
    struct = TYPEHASH["EmergencyCancel"] + encode(["bytes32", "uint256"], [_b32(EMERGENCIES[ref]), at + dl])
    signature = _sign(run.chain.separator, struct, by, sig)
    chain = run.chain.call(run.chain.data("cancelEmergency", _b32(EMERGENCIES[ref]), at + dl, signature), at)
    run.check("cancel", chain, rules.cancel_emergency(run.model, EMERGENCIES[ref], at + dl, ADDR[by], sig))


def _target(listed: tuple[str, ...], target: int | str) -> str:
    """The resource id a release names: the k-th listed one, or one by name."""
    if isinstance(target, str):
        return RES[target]
    return listed[target % len(listed)] if listed else RES["R1"]


def _release_item(run: Run, at: int, spec: tuple[Any, ...]) -> tuple[tuple[Any, ...], rules.ReleaseItem]:
    ref, target, request, dl, sig = spec
    g = run.grant(ref)
    resource = _target(g.terms.resources, target)
    grantee = next(n for n, a in ADDR.items() if a == g.terms.grantee)
    struct = TYPEHASH["ReleaseRequest"] + _b32(g.grant_id) + _b32(resource) + _b32(REQUESTS[request])
    struct += (at + dl).to_bytes(32, "big")
    if sig is Sig.INVALID:  # signed by someone else than the grantee
        signature = _sign(run.chain.separator, struct, "s2" if grantee != "s2" else "s1", Sig.OK)
    else:
        signature = _sign(run.chain.separator, struct, grantee, sig)
    call = (g.tuple(), _b32(resource), _b32(REQUESTS[request]), at + dl, signature)
    return call, rules.ReleaseItem(g.grant_id, resource, REQUESTS[request], at + dl, sig)


def do_release(run: Run, op: tuple[Any, ...]) -> None:
    at = run.tick()
    call, item = _release_item(run, at, op[1])
    run.check(
        "release", run.chain.call(run.chain.data("recordRelease", *call), at), rules.record_release(run.model, item)
    )


def do_releases(run: Run, op: tuple[Any, ...]) -> None:
    at = run.tick()
    pairs = [_release_item(run, at, spec) for spec in op[1]]
    chain = run.chain.releases([call for call, _ in pairs], at)
    model = [_skipped(o) for o in rules.record_releases(run.model, [item for _, item in pairs])]
    run.check("releases", chain, model)


def do_erelease(run: Run, op: tuple[Any, ...]) -> None:
    _, ref, consumer, subject, target, request, dl, sig = op
    at = run.tick()
    terms = run.emergencies.get(ref) or rules.EmergencyTerms((RES["R1"],), (ADDR["c1"],), at, at + 60, "none", at + 60)
    resource = _target(terms.resources, target)
    struct = TYPEHASH["EmergencyReleaseRequest"] + encode(
        ["bytes32", "address", "bytes32", "bytes32", "uint256"],
        [_b32(EMERGENCIES[ref]), ADDR[subject], _b32(resource), _b32(REQUESTS[request]), at + dl],
    )
    signature = GARBAGE_SIGNATURE if sig is Sig.INVALID else _sign(run.chain.separator, struct, consumer, sig)
    data = run.chain.data(
        "recordEmergencyRelease",
        _emergency_tuple(EMERGENCIES[ref], terms),
        ADDR[subject],
        _b32(resource),
        _b32(REQUESTS[request]),
        at + dl,
        signature,
    )
    item = rules.EmergencyRelease(
        EMERGENCIES[ref], ADDR[consumer], ADDR[subject], resource, REQUESTS[request], at + dl, sig, terms
    )
    run.check("erelease", run.chain.call(data, at), rules.record_emergency_release(run.model, item))


DO = {
    "grant": do_grant,
    "revoke": do_revoke,
    "pause": do_pause,
    "suspend": do_suspend,
    "role": do_role,
    "register": do_register,
    "update": do_update,
    "time": do_time,
    "propose": do_propose,
    "approve": do_approve,
    "cancel": do_cancel,
    "release": do_release,
    "releases": do_releases,
    "erelease": do_erelease,
}


# ---- the fixture and the test -------------------------------------------------------------------


@dataclass
class World:
    chain: Chain
    model: rules.State
    snapshot: str
    time: int
    block: int


@pytest.fixture(scope="module")
def world(compiled: CompilationResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A deployment with the cast onboarded and the catalog registered, on an anvil of its own."""
    node = start_node("anvil", log_dir=tmp_path_factory.mktemp("anvil-differential"))
    try:
        chain = Chain(node, compiled)
        model = rules.State(threshold=2)
        for name in ("admin", "a1", "a2"):
            rules.apply_member(model, ADDR[name], Role.ADMIN if name == "admin" else Role.AUDITOR)
        at = chain.time
        catalog_blocks: list[int] = []
        for name, role in ROLES.items():
            key = bytes(32) if role & Role.CONSUMER else b""
            assert chain.call(chain.data("onboard", ADDR[name], int(role), bytes(32), key), at) is None
            rules.apply_member(model, ADDR[name], int(role))
            at += 1
        for name, sensitivity in CATALOG.items():
            receipt = chain.send(
                chain.data("multicall", [chain.data("registerResource", f"diff/{name}", name, ADDR["p"], sensitivity)]),
                at,
            )
            model.block = int(receipt["blockNumber"], 16)
            catalog_blocks.append(model.block)
            assert rules.register_resource(model, RES[name], sensitivity) is None
            at += 1
        RECORDING["world"] = {
            "separator": "0x" + chain.separator.hex(),
            "time": at,
            "block": model.block,
            "catalog_blocks": catalog_blocks,
        }
        yield World(chain, model, chain.snapshot(), at, model.block)
    finally:
        node.stop()


def run_sequence(world: World, ops: list[tuple[Any, ...]]) -> Run:
    world.chain.revert(world.snapshot)
    world.snapshot = world.chain.snapshot()
    run = Run(world.chain, copy.deepcopy(world.model), world.time, world.block)
    for op in ops:
        DO[op[0]](run, op)
    if RECORD:
        RECORDING["sequences"].append({"ops": encode_json(ops), "chain": encode_json([c for _, c, _ in run.outcomes])})
    return run


def setup_model(catalog_blocks: list[int]) -> rules.State:
    """The model of the world fixture's deployment (cast onboarded, catalog registered at those blocks)."""
    model = rules.State(threshold=2)
    for name in ("admin", "a1", "a2"):
        rules.apply_member(model, ADDR[name], Role.ADMIN if name == "admin" else Role.AUDITOR)
    for name, role in ROLES.items():
        rules.apply_member(model, ADDR[name], int(role))
    for (name, sensitivity), block in zip(CATALOG.items(), catalog_blocks, strict=True):
        model.block = block
        assert rules.register_resource(model, RES[name], sensitivity) is None
    return model


def encode_json(value: Any) -> Any:
    """Operations and outcomes as JSON: tuples as lists, a ``Sig`` as ``{"sig": name}``."""
    if isinstance(value, Sig):
        return {"sig": value.name}
    if isinstance(value, list | tuple):
        return [encode_json(v) for v in value]
    return value


def decode_json(value: Any) -> Any:
    if isinstance(value, dict):
        return Sig[value["sig"]]
    if isinstance(value, list):
        return [decode_json(v) for v in value]
    return value


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(
    ops=st.tuples(
        st.lists(GOOD_GRANT, min_size=1, max_size=3),
        st.lists(EMERGENCY_SETUP, min_size=1, max_size=1),
        st.lists(OPS, max_size=12),
    ).map(lambda parts: [*parts[0], *(op for pair in parts[1] for op in pair), *parts[2]])
)
def test_contract_and_rules_agree(world: World, ops: list[tuple[Any, ...]]) -> None:
    run = run_sequence(world, ops)
    for op, outcome, _ in run.outcomes:
        for one in outcome if isinstance(outcome, list) else [outcome]:
            event(f"{op}: {one or 'recorded'}")
            TALLY[f"{op}: {one or 'recorded'}"] += 1


def test_a_hand_written_sequence_reaches_the_interesting_outcomes(world: World) -> None:
    """Guards the generator's reach: one sequence through the new rules, with the outcomes named."""
    at = 10_000
    ops: list[tuple[Any, ...]] = [
        ("grant", "s1", "c1", ["*"], 0, 100_000, 0, 0, at, Sig.OK),  # grant 0: the wildcard
        ("release", (0, "R1", 0, at, Sig.OK)),  # covered
        ("release", (0, "*", 1, at, Sig.OK)),  # the wildcard id itself: never
        ("release", (0, "R3", 1, at, Sig.OK)),  # sensitivity 3 must be named
        ("register", "N1", 1),
        ("release", (0, "N1", 1, at, Sig.OK)),  # registered after the grant: not covered
        ("update", "R3", 2),
        ("release", (0, "R3", 1, at, Sig.OK)),  # lowered after the grant: not covered
        ("release", (0, "R2", 1, -1, Sig.OK)),  # expired deadline
        ("pause", 0, True, 2, 1, at, Sig.OK),
        ("pause", 0, False, 1, 2, at, Sig.OK),  # an older resume: stale
        ("revoke", 0, 0, at, Sig.OK, False),  # nonce 0 was the grant's: used
        ("grant", "s2", "c2", ["R1"], 0, 100_000, 0, 0, at, Sig.OK),  # grant 1
        ("revoke", 1, 1, at, Sig.OK, True),  # nonce 0 used by the grant, 1 free; grant 1 revoked
        ("propose", 0, ["R4"], ["c1"], 0, 3_600, "admin", at, Sig.OK),
        ("approve", 0, "a1", Sig.OK, False),
        ("erelease", 0, "c1", "s1", "R4", 2, at, Sig.OK),
        ("suspend", "a1", True),
        ("erelease", 0, "c1", "s1", "R4", 1, at, Sig.OK),  # the auditor's approval no longer counts
        ("suspend", "a1", False),
        ("role", "a1", int(Role.SUBJECT)),  # the auditor who approved is one no more
        ("erelease", 0, "c1", "s1", "R4", 1, at, Sig.OK),
        ("role", "a1", int(Role.AUDITOR)),  # adding AUDITOR needs an auditor's approval
        ("cancel", 0, "a2", at, Sig.OK),
        ("erelease", 0, "c1", "s1", "R4", 1, at, Sig.OK),
    ]
    outcomes = [(op, chain) for op, chain, _ in run_sequence(world, ops).outcomes]
    assert outcomes == [
        ("grant", None),
        ("release", None),
        ("release", "ConsentLedgerResourceNotGranted"),
        ("release", "ConsentLedgerResourceNotGranted"),
        ("register", None),
        ("release", "ConsentLedgerResourceNotGranted"),
        ("update", None),
        ("release", "ConsentLedgerResourceNotGranted"),
        ("release", "ConsentLedgerExpiredDeadline"),
        ("pause", None),
        ("pause", "ConsentLedgerStaleSequence"),
        ("revoke", "ConsentLedgerNonceUsed"),
        ("grant", None),
        ("revoke", None),
        ("propose", None),
        ("approve", None),
        ("erelease", None),
        ("suspend", None),
        ("erelease", "ConsentLedgerEmergencyNotApproved"),
        ("suspend", None),
        ("role", None),
        ("erelease", "ConsentLedgerEmergencyNotApproved"),
        ("role", "MemberRegistryAuditorApprovalRequired"),
        ("cancel", None),
        ("erelease", "ConsentLedgerEmergencyCancelled"),
    ]


def teardown_module() -> None:
    if RECORD:
        with open(RECORD, "w") as fh:
            json.dump(RECORDING, fh, separators=(",", ":"))
    if os.environ.get("QCL_DIFF_STATS"):
        print("\n".join(f"{n:6d} {k}" for k, n in sorted(TALLY.items())))
