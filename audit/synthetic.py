"""Synthetic audit trails: a ledger history built in memory, for the verification benchmark and tests.

:func:`build` makes a consistent history — members, catalog, grants, ``releases`` releases in
grouped transactions, each signed by its grantee's secp256k1 key over the real EIP-712
``ReleaseRequest`` digest, the vault's release log with its entries and the checkpoints anchored
every ``checkpoint_every`` entries — that verifies with no violation. Tests then tamper with it.

What is synthetic: block numbers and times, the keys, and the calldata of each grouped release,
which is the concatenation of each item's ABI words (grant terms, resource, request id, deadline,
signature) rather than a full ABI encoding with offsets: the same bytes per release for the
calldata scan, without the encoder's cost.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from coincurve import PrivateKey
from eth_utils import to_checksum_address

from chain_client import eip712
from db.release_log import LOG_PREFIX

from ._sigcheck import keccak256
from .merkle import MerkleLog, leaf_hash
from .verify import TrailEvent, _domain_separator

DOMAIN = eip712.Eip712Domain(name="Quanchenglian", version="1", chain_id=31337, verifying_contract="0x" + "5a" * 20)  # type: ignore[arg-type]
_RELEASE_TYPEHASH = eip712.typehash("ReleaseRequest")
_EMERGENCY_RELEASE_TYPEHASH = eip712.typehash("EmergencyReleaseRequest")
#: Releases per grouped transaction, and transactions per block.
GROUP = 50
TX_PER_BLOCK = 4
START_TIME = 1_800_000_000


@dataclass
class SyntheticTrail:
    """A :class:`audit.verify.TrailSource` held in memory (lists tests may edit)."""

    events_list: list[TrailEvent]
    transactions_list: list[tuple[int, str, bytes]]  # (block, hash, calldata)
    entries: list[bytes]
    texts: list[str] = field(default_factory=list)
    threshold: int = 2
    head_block: int = 0
    #: Private keys of the members the trail signs for (address -> secret), for tests that re-sign.
    keys: dict[str, bytes] = field(default_factory=dict)
    #: The EIP-712 domain signatures are made under (a real chain's, for a trail read from one).
    eip712_domain: eip712.Eip712Domain = DOMAIN

    def head(self) -> int:
        return self.head_block

    def domain(self) -> eip712.Eip712Domain:
        return self.eip712_domain

    def emergency_threshold(self) -> int:
        return self.threshold

    def events(self, to_block: int) -> Iterator[TrailEvent]:
        for event in self.events_list:
            if event.block_number > to_block:
                return
            yield event

    def transactions(self, from_block: int, to_block: int) -> Iterator[tuple[str, bytes]]:
        for block, tx_hash, data in self.transactions_list:
            if from_block <= block <= to_block:
                yield tx_hash, data

    def log_entries(self) -> Sequence[bytes]:
        return self.entries

    def private_texts(self) -> Sequence[str]:
        return self.texts


def _address(key: PrivateKey) -> str:
    return str(to_checksum_address(keccak256(key.public_key.format(compressed=False)[1:])[-20:]))


def _sign_chunk(args: tuple[bytes, list[tuple[bytes, bytes]]]) -> list[bytes]:
    """Sign (secret, encoded request) pairs; returns r || s || v signatures."""
    separator, jobs = args
    prefix = b"\x19\x01" + separator
    keys: dict[bytes, PrivateKey] = {}
    out = []
    for secret, encoded in jobs:
        key = keys.get(secret) or keys.setdefault(secret, PrivateKey(secret))
        signature = key.sign_recoverable(keccak256(prefix + keccak256(encoded)), hasher=None)
        out.append(signature[:64] + bytes([signature[64] + 27]))
    return out


def _hex32(value: bytes) -> str:
    return "0x" + value.hex()


def build(
    releases: int,
    *,
    grantees: int = 100,
    subjects: int = 1_000,
    grants: int = 10_000,
    checkpoint_every: int = 1_000,
    texts: int = 2_000,
    workers: int = 1,
    seed: int | None = None,
) -> SyntheticTrail:
    """A consistent trail of ``releases`` releases (signing runs in ``workers`` processes)."""
    rng = secrets.SystemRandom() if seed is None else random.Random(seed)

    def random32() -> bytes:
        return rng.getrandbits(256).to_bytes(32, "big")

    grantee_keys = [PrivateKey(random32()) for _ in range(grantees)]
    grantee_addresses = [_address(k) for k in grantee_keys]
    subject_addresses = [str(to_checksum_address(random32()[:20])) for _ in range(subjects)]
    resources = [_hex32(random32()) for _ in range(8)]
    events: list[TrailEvent] = []
    block, log_index = 1, 0

    def emit(name: str, args: dict[str, object], tx_hash: str) -> None:
        nonlocal log_index
        events.append(TrailEvent(name, block, log_index, tx_hash, START_TIME + block * 2, args))
        log_index += 1

    setup_tx = _hex32(random32())
    for address in grantee_addresses:
        emit("MemberOnboarded", {"account": address, "roles": 4}, setup_tx)
    for address in subject_addresses:
        emit("MemberOnboarded", {"account": address, "roles": 16}, setup_tx)
    for resource in resources:
        emit("ResourceRegistered", {"resource": resource, "sensitivity": 1}, setup_tx)
    grant_rows = []
    for n in range(min(grants, max(releases, 1))):
        grant_id = _hex32(random32())
        g = n % grantees
        subject = subject_addresses[n % subjects]
        emit(
            "GrantRecorded",
            {
                "grantId": grant_id,
                "subject": subject,
                "grantee": grantee_addresses[g],
                "resources": [resources[n % len(resources)]],
                "validFrom": 0,
                "validUntil": 2**63,
                "maxUses": 0,
            },
            setup_tx,
        )
        grant_rows.append((grant_id, subject, g, resources[n % len(resources)]))

    # The releases: request ids, encoded requests, then signatures (in parallel).
    deadline = START_TIME + 10**9
    plan = []
    for n in range(releases):
        grant_id, subject, g, resource = grant_rows[n % len(grant_rows)]
        request_id = random32()
        encoded = _RELEASE_TYPEHASH + bytes.fromhex(grant_id[2:]) + bytes.fromhex(resource[2:]) + request_id
        encoded += deadline.to_bytes(32, "big")
        plan.append((grant_id, subject, g, resource, request_id, encoded))
    separator = _domain_separator(DOMAIN)
    secrets_ = [k.secret for k in grantee_keys]
    jobs = [(secrets_[g], encoded) for _, _, g, _, _, encoded in plan]
    chunks = [(separator, jobs[i : i + 20_000]) for i in range(0, len(jobs), 20_000)]
    if workers > 1 and len(chunks) > 1:
        with multiprocessing.get_context("forkserver").Pool(workers) as pool:
            signed = [s for part in pool.map(_sign_chunk, chunks) for s in part]
    else:
        signed = [s for chunk in chunks for s in _sign_chunk(chunk)]

    transactions: list[tuple[int, str, bytes]] = []
    entries: list[bytes] = []
    tree = MerkleLog()
    for start in range(0, releases, GROUP):
        if len(transactions) % TX_PER_BLOCK == 0:
            block, log_index = block + 1, 0
        tx_hash = _hex32(random32())
        calldata = [bytes.fromhex("a9059cbb")]
        for n in range(start, min(start + GROUP, releases)):
            grant_id, subject, g, resource, request_id, encoded = plan[n]
            grantee = grantee_addresses[g]
            emit(
                "ReleaseRecorded",
                {
                    "grantId": grant_id,
                    "grantee": grantee,
                    "resource": resource,
                    "requestId": _hex32(request_id),
                    "uses": 1,
                    "deadline": deadline,
                    "signature": "0x" + signed[n].hex(),
                },
                tx_hash,
            )
            calldata.append(encoded[32:] + bytes(12) + bytes.fromhex(subject[2:]) + signed[n])
            entry = {
                "authority": grant_id,
                "block_number": block,
                "commitment": _hex32(random32()),
                "document_id": _hex32(random32()),
                "grantee": grantee,
                "index": n,
                "kind": "grant",
                "release_id": _hex32(keccak256(bytes.fromhex(grantee[2:]) + request_id)),
                "released_at": START_TIME + block * 2,
                "request_id": _hex32(request_id),
                "resource": resource,
                "subject": subject,
                "tx_hash": tx_hash,
            }
            raw = LOG_PREFIX + json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
            entries.append(raw)
            tree.append(leaf_hash(raw))
            if (n + 1) % checkpoint_every == 0:
                root = tree.root()
                emit(
                    "CheckpointAnchored",
                    {"index": (n + 1) // checkpoint_every - 1, "treeSize": n + 1, "rootHash": _hex32(root)},
                    _hex32(random32()),
                )
        transactions.append((block, tx_hash, b"".join(calldata)))
    names = [f"{rng.choice('王李张刘陈杨黄赵')}{rng.choice('伟芳娜敏静丽强磊军洋')}{i}" for i in range(texts // 2)]
    codes = [f"91370100{rng.getrandbits(40):010X}" for _ in range(texts - len(names))]
    return SyntheticTrail(
        events_list=events,
        transactions_list=transactions,
        entries=entries,
        texts=names + codes,
        head_block=block,
        keys={a: k.secret for a, k in zip(grantee_addresses, grantee_keys, strict=True)},
    )


# ---- edits for tests: re-signed releases, an emergency ------------------------------------------


def _signed_event(
    domain: eip712.Eip712Domain, event: TrailEvent, signer_secret: bytes, encoded: bytes, deadline: int
) -> TrailEvent:
    """``event`` carrying ``deadline`` and a fresh signature of ``encoded`` in its args."""
    (signature,) = _sign_chunk((_domain_separator(domain), [(signer_secret, encoded)]))
    args = dict(event.args) | {"deadline": deadline, "signature": "0x" + signature.hex()}
    return replace(event, args=args)


def release_request(args: dict[str, object] | Any, deadline: int) -> bytes:
    """The EIP-712 encoding (typehash and words) of the request a release event's args name."""
    if "emergencyId" in args:
        return (
            _EMERGENCY_RELEASE_TYPEHASH
            + bytes.fromhex(str(args["emergencyId"])[2:])
            + bytes(12)
            + bytes.fromhex(str(args["subject"])[2:])
            + bytes.fromhex(str(args["resource"])[2:])
            + bytes.fromhex(str(args["requestId"])[2:])
            + deadline.to_bytes(32, "big")
        )
    return (
        _RELEASE_TYPEHASH
        + bytes.fromhex(str(args["grantId"])[2:])
        + bytes.fromhex(str(args["resource"])[2:])
        + bytes.fromhex(str(args["requestId"])[2:])
        + deadline.to_bytes(32, "big")
    )


def resign(trail: SyntheticTrail, index: int, *, deadline: int | None = None, **changes: object) -> TrailEvent:
    """Edit the args of release event ``index`` (and its deadline) and sign it again by its grantee.

    The edited event replaces the old one in ``trail`` and is returned.
    """
    event = trail.events_list[index]
    args = dict(event.args) | changes
    when = deadline if deadline is not None else int(args.get("deadline") or 0)
    signer = str(args.get("grantee") or args.get("consumer"))
    edited = replace(event, args=args)
    trail.events_list[index] = _signed_event(
        trail.eip712_domain, edited, trail.keys[signer], release_request(args, when), when
    )
    return trail.events_list[index]


def log_release(trail: SyntheticTrail, event: TrailEvent, kind: str, authority: str, subject: str) -> None:
    """Log ``event``'s release in the vault's log, and its transaction in the calldata scan."""
    a = event.args
    grantee = str(a.get("grantee") or a.get("consumer"))
    request_id = str(a["requestId"])
    entry = {
        "authority": authority,
        "block_number": event.block_number,
        "commitment": "0x" + keccak256(event.tx_hash.encode()).hex(),
        "document_id": "0x" + keccak256(request_id.encode()).hex(),
        "grantee": grantee,
        "index": len(trail.entries),
        "kind": kind,
        "release_id": _hex32(keccak256(bytes.fromhex(grantee[2:]) + bytes.fromhex(request_id[2:]))),
        "released_at": event.timestamp,
        "request_id": request_id,
        "resource": a["resource"],
        "subject": subject,
        "tx_hash": event.tx_hash,
    }
    trail.entries.append(LOG_PREFIX + json.dumps(entry, sort_keys=True, separators=(",", ":")).encode())
    trail.transactions_list.append((event.block_number, event.tx_hash, b"\x00" * 4))


def _append(trail: SyntheticTrail, block: int, names_args: list[tuple[str, dict[str, Any]]], tx: str) -> None:
    time = START_TIME + block * 2
    first = sum(1 for e in trail.events_list if e.block_number == block)
    for n, (name, args) in enumerate(names_args):
        trail.events_list.append(TrailEvent(name, block, first + n, tx, time, args))
    trail.head_block = max(trail.head_block, block)


def append_grant_release(
    trail: SyntheticTrail,
    *,
    resources: list[str] | None = None,
    resource: str,
    grantee: str | None = None,
    grant_id: str | None = None,
) -> int:
    """Append, in a new block, a grant of ``resources`` to a known grantee and one release of ``resource``
    (or, with ``grant_id``, only a release under that recorded grant).

    The release is signed and logged (after the last checkpoint: no checkpoint changes). Returns
    the index of the ``ReleaseRecorded`` event.
    """
    rng = random.Random(len(trail.events_list))
    first = next(e for e in trail.events_list if e.name == "GrantRecorded")
    block = trail.head_block + 1
    new_id, tx, request_id = (_hex32(rng.getrandbits(256).to_bytes(32, "big")) for _ in range(3))
    appended: list[tuple[str, dict[str, Any]]] = []
    if grant_id is None:
        grant_id, grantee = new_id, grantee or str(first.args["grantee"])
        grant = dict(first.args) | {"grantId": grant_id, "grantee": grantee, "resources": list(resources or [])}
        appended.append(("GrantRecorded", grant))
    else:
        grant = dict(
            next(e.args for e in trail.events_list if e.name == "GrantRecorded" and e.args["grantId"] == grant_id)
        )
        grantee = str(grant["grantee"])
    release = {"grantId": grant_id, "grantee": grantee, "resource": resource, "requestId": request_id, "uses": 1}
    _append(trail, block, [*appended, ("ReleaseRecorded", release)], tx)
    index = len(trail.events_list) - 1
    event = resign(trail, index, deadline=START_TIME + block * 2 + 600)
    log_release(trail, event, "grant", grant_id, str(grant["subject"]))
    return index


def add_emergency(trail: SyntheticTrail, *, resource: str, subject: str) -> tuple[int, str]:
    """Append, in a new block, an emergency approved by an ADMIN and an AUDITOR and one release under it.

    The consumer is a new member whose key joins ``trail.keys``; the release is signed and logged
    (after the last checkpoint). Returns the index of the ``EmergencyReleaseRecorded`` event and
    the consumer's address.
    """
    rng = random.Random(len(trail.events_list))
    key = PrivateKey(rng.getrandbits(256).to_bytes(32, "big"))
    consumer, admin, auditor = _address(key), _random_address(rng), _random_address(rng)
    trail.keys[consumer] = key.secret
    block = trail.head_block + 1
    time = START_TIME + block * 2
    emergency_id, tx, request_id = (_hex32(rng.getrandbits(256).to_bytes(32, "big")) for _ in range(3))
    scope = {
        "emergencyId": emergency_id,
        "proposer": admin,
        "resources": [resource],
        "consumers": [consumer],
        "validFrom": time - 10,
        "validUntil": time + 3600,
    }
    release = {
        "emergencyId": emergency_id,
        "consumer": consumer,
        "subject": subject,
        "resource": resource,
        "requestId": request_id,
    }
    _append(
        trail,
        block,
        [
            ("MemberOnboarded", {"account": admin, "roles": 1}),
            ("MemberOnboarded", {"account": auditor, "roles": 8}),
            ("MemberOnboarded", {"account": consumer, "roles": 4}),
            ("EmergencyProposed", scope),
            ("EmergencyApproved", {"emergencyId": emergency_id, "approver": admin, "approvals": 1, "approved": False}),
            ("EmergencyApproved", {"emergencyId": emergency_id, "approver": auditor, "approvals": 2, "approved": True}),
            ("EmergencyReleaseRecorded", release),
        ],
        tx,
    )
    index = len(trail.events_list) - 1
    event = resign(trail, index, deadline=time + 600)
    log_release(trail, event, "emergency", emergency_id, subject)
    return index, consumer


def _random_address(rng: random.Random) -> str:
    return str(to_checksum_address(rng.getrandbits(160).to_bytes(20, "big")))
