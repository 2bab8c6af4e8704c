"""Follow the ledger's contracts into a database: events, transactions; resumable, reorg-safe.

The :class:`Indexer` reads the logs of both deployed contracts (ConsentLedger, which also holds the
member registry and the data catalog, and AuditAnchor) with one ``eth_getLogs`` call per batch of
blocks, decodes them with the contracts' event ABIs (raw logs through eth_abi: web3's per-log
formatting and ``process_log`` cost about 3/4 of the time) and hands each batch to an :class:`IndexStore`,
which must write the batch's events, transactions, block headers and the new cursor in ONE
transaction. So whatever happens (a crash, the chain going away mid-batch) the store holds a
consistent prefix of the chain, and a new :class:`Indexer` on the same store continues where the
last one stopped.

Transactions. Every block of a batch is also read in full (``eth_getBlockByNumber(n, true)``, in
JSON-RPC batches), and every transaction sent directly to one of the two contracts is kept as an
:class:`IndexedTransaction` (sender, recipient, calldata), reverted ones included: a reverted
transaction emits nothing, but its calldata is on chain all the same, and the auditor scans it for
personal data. The release events (``ReleaseRecorded``, ``EmergencyReleaseRecorded``) carry the
``deadline`` and ``signature`` of the grantee's signed request in their own arguments (SPEC §9.8:
the chain alone proves a release, however the call reached the ledger), copied to
:attr:`IndexedEvent.deadline` and :attr:`IndexedEvent.signature`, so the auditor can verify every
release's signature from the database. Only for a release event without them (a deployment of the
v1 contracts) are they taken from the calldata item that produced it (``recordRelease``,
``recordReleases``, ``recordEmergencyRelease``; decoded with eth_abi and matched by resource and
request id, skipping the items a grouped release rejected); when that calldata is unknown (a
contract calling the ledger) the two fields stay None and a warning is logged.

Layering: ``chain_client`` knows nothing of the database. :class:`IndexStore` is the port the
indexer writes through (plain dataclasses in and out); ``vault.index_models.SqlIndexStore`` is the
SQLAlchemy adapter on the platform database::

    from db.index_store import SqlIndexStore
    indexer = Indexer(ledger=ledger, store=SqlIndexStore(store), confirmations=2)
    indexer.sync()

Reorgs. The store keeps the hash, parent hash and timestamp of every block that has events or
ledger transactions, and of the last block of every batch (the cursor). Before each sync, and after
reading each batch, the indexer compares the cursor's stored hash with the chain's hash at that
height; on a mismatch it walks back over the stored blocks to the highest one the chain still has
(the common ancestor), deletes every block, event and transaction above it in one transaction, and
indexes again from there. Within a batch it reads the hash of the batch's last block before
``eth_getLogs``, then every block of the batch after it, and checks that the blocks link up (each
one's parent hash is its predecessor's hash, the first one's is the cursor's), that the last one is
still the block seen before the logs, and that every log's block hash is the chain's; so a batch is
only committed when it, and the cursor it extends, belong to one chain.

``confirmations`` keeps the indexer that many blocks behind the head: with ``N`` confirmations a
block is indexed once ``N`` blocks are mined on top of it, and reorgs shallower than that are never
seen. With 0 the indexer follows the head and relies on the rollback.

Event arguments are stored as JSON: ``bytes`` as ``0x`` hex, integers of 2**53 and more as decimal
strings (JSON readers that use doubles would round them), addresses EIP-55 checksummed. The key
columns (grant id, subject, grantee, …) are copied from the arguments; grant-scoped events that
do not name the grant's subject or grantee (``ReleaseRecorded``, ``GrantRevoked``, …) get them
from the grant's ``GrantRecorded``, so that "every event of this subject" includes its releases.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypedDict, cast

import requests
from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_abi.grammar import ABIType, BasicType, TupleType
from eth_abi.grammar import parse as parse_abi_type
from eth_utils import collapse_if_tuple, event_abi_to_log_topic, function_abi_to_4byte_selector, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ProviderConnectionError, Web3RPCError
from web3.types import RPCEndpoint, RPCResponse

from .._tx import guard
from ..errors import ChainError, ChainUnavailable
from ..ledger import Ledger

__all__ = [
    "BlockHeader",
    "Cursor",
    "EventQuery",
    "IndexConflict",
    "IndexStore",
    "IndexedEvent",
    "IndexedTransaction",
    "Indexer",
    "IndexerError",
    "SyncReport",
    "event_key_columns",
    "jsonable",
    "normalize_address",
    "normalize_bytes32",
    "release_call_decoders",
]

log = logging.getLogger(__name__)

#: Largest integer JSON readers with IEEE doubles keep exactly is 2**53 - 1.
_JSON_SAFE_INT = 2**53
#: Block headers asked for in one JSON-RPC batch.
_HEADER_BATCH = 200
#: Full blocks (with their transactions) asked for in one JSON-RPC batch (the ledger's blocks are
#: small; on a chain of full blocks this would be hundreds of MB per answer).
_BLOCK_BATCH = 200
#: Stored blocks compared with the chain per round trip while looking for a reorg's common ancestor.
_ANCESTOR_PAGE = 64
#: Event name stored for a log that no ABI of ours decodes (kept raw rather than dropped).
UNKNOWN_EVENT = "Unknown"
#: Events that carry the deadline and signature of the release request that produced them.
RELEASE_EVENTS: frozenset[str] = frozenset({"ReleaseRecorded", "EmergencyReleaseRecorded"})
#: The arguments (or item components) of a release function that the release events get.
_RELEASE_FIELDS: tuple[tuple[str, str], ...] = (
    ("resource", "bytes32"),
    ("requestId", "bytes32"),
    ("deadline", "uint256"),
    ("signature", "bytes"),
)


class KeyColumns(TypedDict):
    """The query columns of an event, copied from the arguments of the same (camelCase) name."""

    grant_id: str | None
    subject: str | None
    grantee: str | None
    consumer: str | None
    resource: str | None
    emergency_id: str | None
    request_id: str | None
    document_id: str | None
    account: str | None


KEY_COLUMNS: tuple[str, ...] = tuple(KeyColumns.__annotations__)


# ---- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """The last indexed block: every block up to ``number`` is indexed, ``hash`` is that block's."""

    number: int
    hash: str


@dataclass(frozen=True)
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    timestamp: int

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.number, self.hash)


@dataclass(frozen=True)
class IndexedEvent:
    """One decoded log, as stored. ``args`` is the JSON form of the event's arguments."""

    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    tx_index: int
    contract: str
    event: str
    args: dict[str, Any]
    grant_id: str | None = None
    subject: str | None = None
    grantee: str | None = None
    consumer: str | None = None
    resource: str | None = None
    emergency_id: str | None = None
    request_id: str | None = None
    document_id: str | None = None
    account: str | None = None
    #: The block's timestamp (filled in by queries; not needed to store an event).
    block_timestamp: int | None = None
    #: ``ReleaseRecorded`` and ``EmergencyReleaseRecorded``: the ``deadline`` and ``signature``
    #: (lower-case 0x hex) of the grantee's signed request, from the event's arguments (or, for v1
    #: events without them, the calldata item that produced it). None for other events.
    deadline: int | None = None
    signature: str | None = None

    @property
    def position(self) -> tuple[int, int]:
        """Chain order."""
        return (self.block_number, self.log_index)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "contract": self.contract,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "block_timestamp": self.block_timestamp,
            "log_index": self.log_index,
            "tx_hash": self.tx_hash,
            "tx_index": self.tx_index,
            "args": self.args,
        }

    def args_json(self) -> str:
        return json.dumps(self.args, separators=(",", ":"))


@dataclass(frozen=True)
class IndexedTransaction:
    """A mined transaction sent directly to one of the ledger's contracts, reverted ones included.

    ``sender`` and ``recipient`` are EIP-55 checksummed; ``hash`` and ``input`` (the calldata) are
    lower-case ``0x`` hex.
    """

    block_number: int
    block_hash: str
    tx_index: int
    hash: str
    sender: str
    recipient: str
    input: str

    @property
    def position(self) -> tuple[int, int]:
        """Chain order."""
        return (self.block_number, self.tx_index)


@dataclass(frozen=True)
class EventQuery:
    """Filters of :meth:`IndexStore.query` (all given ones must hold); results in chain order.

    Addresses are EIP-55 checksummed and 32-byte values lower-case ``0x`` hex (see
    :meth:`Indexer.events`, which normalises what callers pass).
    """

    events: tuple[str, ...] = ()
    grant_id: str | None = None
    subject: str | None = None
    grantee: str | None = None
    consumer: str | None = None
    resource: str | None = None
    emergency_id: str | None = None
    request_id: str | None = None
    document_id: str | None = None
    account: str | None = None
    tx_hash: str | None = None
    from_block: int | None = None
    to_block: int | None = None
    limit: int | None = None
    offset: int = 0


@dataclass
class SyncReport:
    """What one :meth:`Indexer.sync` did."""

    #: The chain head seen when the sync started (None when it failed before asking).
    head: int | None = None
    #: The highest block the sync would index: ``head - confirmations``.
    target: int | None = None
    #: First and last block indexed by this sync (None when nothing new was indexed).
    from_block: int | None = None
    to_block: int | None = None
    #: The cursor when the sync ended (None: nothing indexed yet).
    cursor: int | None = None
    batches: int = 0
    blocks: int = 0
    events: int = 0
    #: Transactions to the ledger's contracts indexed (reverted ones included).
    transactions: int = 0
    #: Reorgs detected, and the blocks and events they removed from the index.
    reorgs: int = 0
    rolled_back_blocks: int = 0
    rolled_back_events: int = 0
    seconds: float = 0.0

    @property
    def caught_up(self) -> bool:
        return self.target is not None and self.cursor is not None and self.cursor >= self.target

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def blocks_per_second(self) -> float:
        return self.blocks / self.seconds if self.seconds > 0 else 0.0


class IndexerError(ChainError):
    """The indexer cannot make progress (the chain keeps reorganising under it)."""


class IndexConflict(IndexerError):
    """The stored cursor is not the one the indexer extended: another indexer wrote meanwhile."""


# ---- the store port ----------------------------------------------------------------------------


class IndexStore(Protocol):
    """Where the indexer keeps events, transactions, block headers and its cursor.

    ``append`` and ``truncate`` are each one transaction, and check that the stored cursor is still
    ``expected`` (raising :class:`IndexConflict` otherwise), so two indexers on one store cannot
    interleave their writes.
    """

    def cursor(self, name: str) -> Cursor | None:
        """The cursor of indexer ``name``, or None before its first batch."""
        ...

    def blocks_below(self, number: int, limit: int) -> list[BlockHeader]:
        """Up to ``limit`` stored blocks numbered below ``number``, highest first."""
        ...

    def block(self, number: int) -> BlockHeader | None: ...

    def grant_parties(self, grant_ids: Collection[str]) -> dict[str, tuple[str, str]]:
        """(subject, grantee) of the indexed ``GrantRecorded`` events among ``grant_ids``."""
        ...

    def append(
        self,
        name: str,
        *,
        expected: Cursor | None,
        blocks: Sequence[BlockHeader],
        events: Sequence[IndexedEvent],
        cursor: Cursor,
        transactions: Sequence[IndexedTransaction] = (),
    ) -> None:
        """Store one batch and move the cursor to ``cursor``, in one transaction."""
        ...

    def truncate(self, name: str, *, expected: Cursor | None, keep_through: int, cursor: Cursor | None) -> int:
        """Delete every block, event and transaction above ``keep_through`` and set the cursor
        (None: delete it), in one transaction. Returns the number of events deleted."""
        ...

    def query(self, query: EventQuery) -> list[IndexedEvent]: ...

    def transactions(self, from_block: int | None = None, to_block: int | None = None) -> list[IndexedTransaction]:
        """Stored transactions with ``from_block <= block_number <= to_block``, in chain order."""
        ...

    def stream(self, events: Collection[str], to_block: int) -> Iterator[IndexedEvent]:
        """Every stored event named in ``events`` up to ``to_block``, in chain order, with its
        block's timestamp, read in pages (for verification, which reads them all)."""
        ...

    def count(self, events: Collection[str], to_block: int) -> int:
        """How many events :meth:`stream` would give."""
        ...


# ---- JSON form of event arguments --------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """The JSON form of decoded ABI values: bytes as 0x hex, big integers as decimal strings."""
    if isinstance(value, bytes | bytearray):  # HexBytes is bytes
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) >= _JSON_SAFE_INT else value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def normalize_address(value: str | bytes) -> str:
    """EIP-55 form of an address given as text or 20 bytes; ValueError when it is none."""
    try:
        return str(to_checksum_address(value))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an address: {value!r}") from exc


def normalize_bytes32(value: str | bytes) -> str:
    """Lower-case 0x hex of a 32-byte value given as bytes or hex text; ValueError otherwise."""
    raw = bytes(HexBytes(value)) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}: {value!r}")
    return "0x" + raw.hex()


def event_key_columns(args: Mapping[str, Any]) -> KeyColumns:
    """The key columns of an event from its JSON-form arguments."""

    def pick(name: str) -> str | None:
        value = args.get(name)
        return value if isinstance(value, str) else None

    return KeyColumns(
        grant_id=pick("grantId"),
        subject=pick("subject"),
        grantee=pick("grantee"),
        consumer=pick("consumer"),
        resource=pick("resource"),
        emergency_id=pick("emergencyId"),
        request_id=pick("requestId"),
        document_id=pick("documentId"),
        account=pick("account"),
    )


# ---- the indexer -------------------------------------------------------------------------------


class _ChainMoved(Exception):
    """The chain changed under a batch being read; reconcile and read again."""


class _RangeRefused(Exception):
    """The node refused an ``eth_getLogs`` range (too many results, range too wide)."""


@functools.lru_cache(maxsize=8192)
def _checksum(address: str) -> str:
    return str(to_checksum_address(address))


def _typed_json(abi_type: ABIType, value: Any) -> Any:
    """The JSON form of an ABI-decoded value: addresses EIP-55, tuples as lists, see :func:`jsonable`."""
    if abi_type.is_array:
        item = abi_type.item_type
        return [_typed_json(item, v) for v in value]
    if isinstance(abi_type, TupleType):
        return [_typed_json(c, v) for c, v in zip(abi_type.components, value, strict=True)]
    if isinstance(abi_type, BasicType) and abi_type.base == "address":
        return _checksum(value)
    return jsonable(value)


@dataclass(frozen=True)
class _EventDecoder:
    """Decodes the raw logs of one (non-anonymous) event ABI with eth_abi."""

    name: str
    #: (argument name, canonical type, parsed type, indexed) in ABI order.
    inputs: tuple[tuple[str, str, ABIType, bool], ...]
    data_types: tuple[str, ...]

    @classmethod
    def of(cls, entry: dict[str, Any]) -> _EventDecoder:
        inputs = []
        for arg in entry.get("inputs", []):
            type_str = collapse_if_tuple(arg)
            inputs.append((str(arg["name"]), type_str, parse_abi_type(type_str), bool(arg.get("indexed"))))
        return cls(
            name=str(entry["name"]),
            inputs=tuple(inputs),
            data_types=tuple(t for _, t, _, indexed in inputs if not indexed),
        )

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Arguments by name in ABI order (a dynamic indexed argument is its topic, a hash)."""
        indexed = [t for _, t, _, is_indexed in self.inputs if is_indexed]
        if len(topics) != len(indexed) + 1:
            raise ValueError(f"{self.name}: {len(topics) - 1} topics for {len(indexed)} indexed arguments")
        values = iter(abi_decode(self.data_types, data))
        topic_values = iter(topics[1:])
        args: dict[str, Any] = {}
        for name, _, abi_type, is_indexed in self.inputs:
            if not is_indexed:
                args[name] = _typed_json(abi_type, next(values))
                continue
            args[name] = _topic_json(abi_type, next(topic_values))
        return args


_ZERO_PADDING = bytes(12)


def _topic_json(abi_type: ABIType, topic: bytes) -> Any:
    """The JSON form of an indexed argument from its topic (a dynamic one's topic is its hash).

    ``bytes32``, ``address`` and ``uint256`` topics, nearly all of ours, are read directly (eth_abi
    per topic costs more than the rest of the log); other types, and an address topic whose padding
    is not zero (which eth_abi refuses), go through eth_abi.
    """
    if abi_type.is_dynamic:
        return "0x" + topic.hex()
    type_str = abi_type.to_type_str()
    if len(topic) == 32:
        if type_str == "bytes32":
            return "0x" + topic.hex()
        if type_str == "address" and topic[:12] == _ZERO_PADDING:
            return _checksum("0x" + topic[12:].hex())
        if type_str == "uint256":
            return jsonable(int.from_bytes(topic, "big"))
    return _typed_json(abi_type, abi_decode([type_str], topic)[0])


@dataclass(frozen=True)
class _ReleaseCall:
    """One release item of a transaction's calldata (``index``: its position in the item list)."""

    index: int
    resource: str
    request_id: str
    deadline: int
    signature: str


def _head_word(arg: Mapping[str, Any], keep: bool) -> str:
    """The type to decode argument ``arg`` as: its own when ``keep`` or static, else ``uint256``.

    A dynamic value occupies one word of its tuple's head, the offset of its encoding; decoding
    that word as a ``uint256`` skips the value (the grant or emergency scope of a release) instead
    of decoding it, without changing how the other arguments are read.
    """
    type_str = str(collapse_if_tuple(dict(arg)))
    return type_str if keep or not parse_abi_type(type_str).is_dynamic else "uint256"


@dataclass(frozen=True)
class _ReleaseCallDecoder:
    """Decodes the release items of one function's calldata with eth_abi (no web3 formatting).

    For a function whose arguments include ``resource, requestId, deadline, signature``
    (``recordRelease``, ``recordEmergencyRelease``: one item) or whose one ``tuple[]`` argument has
    components of those names (``recordReleases``: an item per element).
    """

    name: str
    #: The argument types to decode (unused dynamic ones as their head word, see :func:`_head_word`).
    types: tuple[str, ...]
    #: Positions of resource, requestId, deadline and signature within an item.
    fields: tuple[int, ...]
    #: The argument holding the item list; None when the arguments are the one item.
    items_arg: int | None

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> _ReleaseCallDecoder | None:
        """The decoder of function ABI ``entry``, or None when it is not a release function."""
        inputs = list(entry.get("inputs", []))

        def positions(args: Sequence[Mapping[str, Any]]) -> tuple[int, ...] | None:
            found = {(str(a.get("name")), str(a.get("type"))): i for i, a in enumerate(args)}
            picked = tuple(found.get(f) for f in _RELEASE_FIELDS)
            return None if None in picked else cast(tuple[int, ...], picked)

        wanted = {name for name, _ in _RELEASE_FIELDS}
        fields = positions(inputs)
        if fields is not None:
            types = tuple(_head_word(a, a.get("name") in wanted) for a in inputs)
            return cls(name=str(entry["name"]), types=types, fields=fields, items_arg=None)
        for k, arg in enumerate(inputs):
            components = list(arg.get("components") or [])
            if arg.get("type") != "tuple[]" or (fields := positions(components)) is None:
                continue
            item = "(" + ",".join(_head_word(c, c.get("name") in wanted) for c in components) + ")[]"
            types = tuple(item if j == k else _head_word(a, False) for j, a in enumerate(inputs))
            return cls(name=str(entry["name"]), types=types, fields=fields, items_arg=k)
        return None

    def decode(self, data: bytes) -> list[_ReleaseCall]:
        """The items of calldata ``data`` (after the selector), in calldata order."""
        values = abi_decode(self.types, data)
        rows = values[self.items_arg] if self.items_arg is not None else (values,)
        r, q, d, s = self.fields
        return [
            _ReleaseCall(
                index=i,
                resource="0x" + bytes(row[r]).hex(),
                request_id="0x" + bytes(row[q]).hex(),
                deadline=int(row[d]),
                signature="0x" + bytes(row[s]).hex(),
            )
            for i, row in enumerate(rows)
        ]


def release_call_decoders(abi: Iterable[Mapping[str, Any]]) -> dict[bytes, _ReleaseCallDecoder]:
    """Selector -> decoder of the release items, for each release function of a contract ``abi``
    (``decoder.decode(calldata[4:])`` gives the items; the audit's RPC source reads calldata with it)."""
    found = {}
    for entry in abi:
        if entry.get("type") == "function" and (call := _ReleaseCallDecoder.of(entry)) is not None:
            found[bytes(function_abi_to_4byte_selector(cast(Any, entry)))] = call
    return found


@dataclass
class _Batch:
    blocks: dict[int, BlockHeader] = field(default_factory=dict)
    events: list[IndexedEvent] = field(default_factory=list)


class Indexer:
    """Indexes the events of ``ledger``'s contracts into ``store``.

    ``confirmations``: blocks left between the head and the last indexed block. ``batch_blocks``:
    blocks per ``eth_getLogs`` call and per store transaction (halved while a node refuses a range,
    grown back afterwards); each of them is also read in full, in JSON-RPC batches of 200.
    ``name`` names the cursor in the store; ``start_block`` defaults to the deployment block.
    ``max_retries``: consecutive batches the chain may change under before :class:`IndexerError`.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        store: IndexStore,
        confirmations: int = 0,
        batch_blocks: int = 2000,
        name: str = "ledger",
        start_block: int | None = None,
        max_retries: int = 20,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        if batch_blocks < 1:
            raise ValueError("batch_blocks must be >= 1")
        self.ledger = ledger
        self.store = store
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self.name = name
        self.start_block = ledger.deployment.deploy_block if start_block is None else start_block
        self.max_retries = max_retries
        #: The last error of :meth:`run_forever` (None after a successful sync).
        self.last_error: BaseException | None = None
        #: The report of the last successful sync.
        self.last_report: SyncReport | None = None
        self._span = batch_blocks
        self._lock = threading.Lock()
        self._addresses = [Web3.to_checksum_address(c.address) for c in (ledger.consent, ledger.anchor)]
        #: The contracts' addresses in lower case (the form of a raw transaction's ``to``).
        self._recipients = frozenset(a.lower() for a in self._addresses)
        #: (contract address, topic 0) -> decoder of that event.
        self._decoders: dict[tuple[str, bytes], _EventDecoder] = {}
        #: (contract address, selector) -> decoder of the release items of that function's calldata.
        self._calls: dict[tuple[str, bytes], _ReleaseCallDecoder] = {}
        for contract in (ledger.consent, ledger.anchor):
            address = Web3.to_checksum_address(contract.address)
            for entry in cast(list[dict[str, Any]], contract.abi):
                if entry.get("type") == "event" and not entry.get("anonymous"):
                    topic = bytes(event_abi_to_log_topic(cast(Any, entry)))
                    self._decoders[(address, topic)] = _EventDecoder.of(entry)
            for selector, call in release_call_decoders(cast(list[dict[str, Any]], contract.abi)).items():
                self._calls[(address, selector)] = call

    @property
    def w3(self) -> Web3:
        return self.ledger.w3

    # ---- sync ------------------------------------------------------------------------------------

    def sync(self, *, max_batches: int | None = None) -> SyncReport:
        """Index from the cursor up to ``head - confirmations`` (at most ``max_batches`` batches).

        Raises :class:`ChainUnavailable` when the chain stops answering; what was committed before
        stays (whole batches only), and the next sync continues from there.
        """
        with self._lock:
            started = time.perf_counter()
            report = SyncReport()
            try:
                self._sync(report, max_batches)
            finally:
                report.seconds = time.perf_counter() - started
            self.last_report = report
            return report

    def _sync(self, report: SyncReport, max_batches: int | None) -> None:
        cursor = self._reconcile(self.store.cursor(self.name), report)
        report.cursor = cursor.number if cursor else None
        target = self._target(report)
        retries = 0
        while max_batches is None or report.batches < max_batches:
            start = cursor.number + 1 if cursor else self.start_block
            if start > target:
                break
            end = min(target, start + self._span - 1)
            try:
                cursor = self._index_batch(cursor, start, end, report)
            except _RangeRefused:
                self._span = max(1, (end - start + 1) // 2)
                continue
            except (_ChainMoved, IndexConflict) as exc:
                retries += 1
                if retries > self.max_retries:
                    raise IndexerError(f"the chain keeps changing under the indexer ({exc})") from None
                log.info("indexer %s: re-reading blocks %d-%d (%s)", self.name, start, end, exc)
                cursor = self._reconcile(self.store.cursor(self.name), report)
                report.cursor = cursor.number if cursor else None
                target = self._target(report)  # the chain may also have become shorter
                continue
            retries = 0
            report.cursor = cursor.number
            self._span = min(self.batch_blocks, self._span * 2)

    def _target(self, report: SyncReport) -> int:
        head = self._head()
        report.head, report.target = head, head - self.confirmations
        return report.target

    def _index_batch(self, cursor: Cursor | None, start: int, end: int, report: SyncReport) -> Cursor:
        end_hash = self._hashes([end])[end]
        if end_hash is None:
            raise _ChainMoved(f"block {end} is gone")
        logs = sorted(self._get_logs(start, end), key=lambda e: (_int(e["blockNumber"]), _int(e["logIndex"])))
        headers, transactions = self._read_blocks(cursor, start, end)
        last = headers[end]
        if last.hash != end_hash:
            raise _ChainMoved(f"block {end} changed while its logs were read")
        batch = _Batch()
        for entry in logs:
            number = _int(entry["blockNumber"])
            header = headers.get(number)
            if header is None or header.hash != _hex(entry["blockHash"]):
                raise _ChainMoved(f"block {number} changed while its logs were read")
            batch.blocks[number] = header
            batch.events.append(self._decode(entry))
        for tx in transactions:
            batch.blocks[tx.block_number] = headers[tx.block_number]
        batch.blocks[end] = last
        releases = self._match_releases(batch.events, {tx.hash: tx for tx in transactions})
        events = self._completed(batch.events, releases)
        new_cursor = last.cursor
        self.store.append(
            self.name,
            expected=cursor,
            blocks=[batch.blocks[n] for n in sorted(batch.blocks)],
            events=events,
            cursor=new_cursor,
            transactions=transactions,
        )
        report.batches += 1
        report.blocks += end - start + 1
        report.events += len(events)
        report.transactions += len(transactions)
        report.from_block = start if report.from_block is None else report.from_block
        report.to_block = end
        return new_cursor

    def _read_blocks(
        self, cursor: Cursor | None, start: int, end: int
    ) -> tuple[dict[int, BlockHeader], list[IndexedTransaction]]:
        """Headers of blocks ``start..end`` and their transactions to our contracts, in chain order.

        Raises :class:`_ChainMoved` unless the blocks form one chain on top of ``cursor``.
        """
        headers: dict[int, BlockHeader] = {}
        transactions: list[IndexedTransaction] = []
        parent = cursor.hash if cursor is not None else None
        recipients = self._recipients
        for number, block in self._full_blocks(range(start, end + 1)):
            if block is None:
                raise _ChainMoved(f"block {number} is gone")
            header = _block_header(block)
            if header.number != number:
                raise Web3RPCError(f"eth_getBlockByNumber({number}) answered block {header.number}")
            if parent is not None and header.parent_hash != parent:
                if number == start:
                    raise _ChainMoved(f"indexed block {number - 1} is no longer on the chain")
                raise _ChainMoved(f"block {number} changed while the blocks were read")
            headers[number] = header
            parent = header.hash
            for tx in block.get("transactions") or ():
                if not isinstance(tx, Mapping):
                    raise Web3RPCError(f"eth_getBlockByNumber({number}, true) answered transaction hashes")
                to = tx.get("to")
                if not to or str(to).lower() not in recipients:
                    continue
                if _hex(tx.get("blockHash") or header.hash) != header.hash:
                    raise _ChainMoved(f"block {number} changed while its transactions were read")
                transactions.append(
                    IndexedTransaction(
                        block_number=number,
                        block_hash=header.hash,
                        tx_index=_int(tx["transactionIndex"]),
                        hash=_hex(tx["hash"]),
                        sender=_checksum(str(tx["from"])),
                        recipient=_checksum(str(to)),
                        input=_hex(tx.get("input", tx.get("data", "0x"))),
                    )
                )
        return headers, transactions

    def _reconcile(self, cursor: Cursor | None, report: SyncReport) -> Cursor | None:
        """Check ``cursor`` against the chain; on a reorg roll back to the common ancestor."""
        if cursor is None:
            return None
        if self._hashes([cursor.number])[cursor.number] == cursor.hash:
            return cursor
        ancestor: Cursor | None = None
        upper = cursor.number
        while ancestor is None:
            stored = self.store.blocks_below(upper, _ANCESTOR_PAGE)
            if not stored:
                break
            chain = self._hashes([b.number for b in stored])
            for block in stored:  # highest first
                if chain[block.number] == block.hash:
                    ancestor = block.cursor
                    break
            upper = stored[-1].number
        keep = ancestor.number if ancestor is not None else self.start_block - 1
        removed = self.store.truncate(self.name, expected=cursor, keep_through=keep, cursor=ancestor)
        report.reorgs += 1
        report.rolled_back_blocks += cursor.number - keep
        report.rolled_back_events += removed
        log.warning(
            "indexer %s: reorg below block %d; rolled back %d blocks and %d events to block %d",
            self.name,
            cursor.number,
            cursor.number - keep,
            removed,
            keep,
        )
        return ancestor

    # ---- decoding --------------------------------------------------------------------------------

    def _decode(self, entry: Mapping[str, Any]) -> IndexedEvent:
        """An event from a raw ``eth_getLogs`` entry (hex strings, as the node sends them)."""
        address = _checksum(str(entry["address"]))
        topics = [bytes(HexBytes(t)) for t in entry["topics"]]
        data = bytes(HexBytes(entry["data"]))
        decoder = self._decoders.get((address, topics[0])) if topics else None
        name, args = UNKNOWN_EVENT, {"topics": ["0x" + t.hex() for t in topics], "data": "0x" + data.hex()}
        if decoder is not None:
            try:
                name, args = decoder.name, decoder.decode(topics, data)
            except (ValueError, DecodingError) as exc:  # not what our ABI says: keep it raw
                log.warning(
                    "indexer %s: undecodable %s log in block %s: %s", self.name, decoder.name, entry["blockNumber"], exc
                )
        return IndexedEvent(
            block_number=_int(entry["blockNumber"]),
            block_hash=_hex(entry["blockHash"]),
            log_index=_int(entry["logIndex"]),
            tx_hash=_hex(entry["transactionHash"]),
            tx_index=_int(entry["transactionIndex"]),
            contract=address,
            event=name,
            args=args,
            **event_key_columns(args),
        )

    def _match_releases(
        self, events: Sequence[IndexedEvent], transactions: Mapping[str, IndexedTransaction]
    ) -> dict[int, _ReleaseCall]:
        """The calldata item of each release event among ``events``, by the event's position.

        Within a transaction an event gets the first item, in calldata order, with its resource and
        request id that was neither matched before nor rejected (``ReleaseRejected`` names the
        rejected items' indexes), which is the item that emitted it.
        """
        releases: dict[str, list[int]] = {}
        rejected: dict[str, set[int]] = {}
        for i, event in enumerate(events):
            if event.event in RELEASE_EVENTS and _signed_args(event.args) is None:
                releases.setdefault(event.tx_hash, []).append(i)
            elif event.event == "ReleaseRejected":
                index = event.args.get("index")
                if isinstance(index, int | str):  # a uint256 (a string from 2**53 on)
                    rejected.setdefault(event.tx_hash, set()).add(int(index))
        matched: dict[int, _ReleaseCall] = {}
        for tx_hash, positions in releases.items():
            tx = transactions.get(tx_hash)
            calls = self._release_calls(tx) if tx is not None else None
            if calls is not None:
                skip = rejected.get(tx_hash, set())
                pool: dict[tuple[str | None, str | None], deque[_ReleaseCall]] = {}
                for call in calls:
                    if call.index not in skip:
                        pool.setdefault((call.resource, call.request_id), deque()).append(call)
                for i in positions:
                    queue = pool.get((events[i].resource, events[i].request_id))
                    if queue:
                        matched[i] = queue.popleft()
            unmatched = sum(1 for i in positions if i not in matched)
            if unmatched:
                why = (
                    "it was not sent to the ledger's contracts directly"
                    if tx is None
                    else "its calldata is no release call the ABI decodes"
                    if calls is None
                    else "no calldata item matches"
                )
                log.warning(
                    "indexer %s: no deadline and signature for %d release event(s) of transaction %s: %s",
                    self.name,
                    unmatched,
                    tx_hash,
                    why,
                )
        return matched

    def _release_calls(self, tx: IndexedTransaction) -> list[_ReleaseCall] | None:
        """The release items of ``tx``'s calldata; None when it is no release call our ABI decodes."""
        data = bytes(HexBytes(tx.input))
        decoder = self._calls.get((tx.recipient, data[:4]))
        if decoder is None:
            return None
        try:
            return decoder.decode(data[4:])
        except (ValueError, DecodingError) as exc:
            log.warning(
                "indexer %s: undecodable %s calldata in transaction %s: %s", self.name, decoder.name, tx.hash, exc
            )
            return None

    def _completed(self, events: list[IndexedEvent], releases: Mapping[int, _ReleaseCall]) -> list[IndexedEvent]:
        """``events`` with the subject and grantee of grant-scoped events filled in from the grant's
        ``GrantRecorded``, and the deadline and signature of the release events (``releases``, by
        position; see :meth:`_match_releases`)."""
        parties: dict[str, tuple[str, str]] = {}
        missing: set[str] = set()
        for event in events:
            if event.event == "GrantRecorded" and event.grant_id and event.subject and event.grantee:
                parties[event.grant_id] = (event.subject, event.grantee)
            elif event.grant_id and (event.subject is None or event.grantee is None):
                missing.add(event.grant_id)
        missing -= parties.keys()
        if missing:
            parties.update(self.store.grant_parties(missing))
        out = []
        for i, event in enumerate(events):
            changes: dict[str, Any] = {}
            known = parties.get(event.grant_id) if event.grant_id else None
            if known is not None and (event.subject is None or event.grantee is None):
                changes["subject"], changes["grantee"] = event.subject or known[0], event.grantee or known[1]
            signed = _signed_args(event.args) if event.event in RELEASE_EVENTS else None
            call = releases.get(i)
            if signed is not None:
                changes["deadline"], changes["signature"] = signed
            elif call is not None:
                changes["deadline"], changes["signature"] = call.deadline, call.signature
            out.append(replace(event, **changes) if changes else event)
        return out

    # ---- reads straight from the chain (the part the index has not reached) -----------------------

    def head_header(self) -> BlockHeader:
        """The chain's newest block: number, hash and timestamp (one ``eth_getBlockByNumber``)."""
        response = self._request(RPCEndpoint("eth_getBlockByNumber"), ["latest", False])
        block = response.get("result")
        if response.get("error") or not block:
            raise Web3RPCError(f"eth_getBlockByNumber(latest) failed: {response.get('error')}", rpc_response=response)
        return _block_header(block)

    def read_events(self, start: int, end: int) -> list[IndexedEvent]:
        """The events of blocks ``start..end`` read from the chain, decoded as the index stores them,
        in chain order: one ``eth_getLogs`` (split in halves while the node refuses the range).

        ``block_timestamp`` is set when the node's logs carry ``blockTimestamp``; the subject and
        grantee of releases (completed from calldata by :meth:`sync`) are left as the log has them.
        """
        if start > end:
            return []
        try:
            logs = self._get_logs(start, end)
        except _RangeRefused:
            middle = (start + end) // 2
            return self.read_events(start, middle) + self.read_events(middle + 1, end)
        events = []
        for entry in sorted(logs, key=lambda e: (_int(e["blockNumber"]), _int(e["logIndex"]))):
            event = self._decode(entry)
            stamp = entry.get("blockTimestamp")
            events.append(event if stamp is None else replace(event, block_timestamp=_int(stamp)))
        return events

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        """Headers of the blocks ``numbers`` that exist, read from the chain (JSON-RPC batches)."""
        return self._headers(list(numbers))

    # ---- chain access ----------------------------------------------------------------------------

    def _head(self) -> int:
        return int(_guard(lambda: self.w3.eth.block_number))

    def _get_logs(self, start: int, end: int) -> list[dict[str, Any]]:
        """Raw logs of both contracts in ``start..end`` (one ``eth_getLogs``; no web3 formatting)."""
        params = {"address": self._addresses, "fromBlock": hex(start), "toBlock": hex(end)}
        response = self._request(RPCEndpoint("eth_getLogs"), [params])
        error = response.get("error")
        if error:
            if end > start:  # nodes cap the range or the number of results; ask for less
                log.info("indexer %s: eth_getLogs %d-%d refused (%s); halving the range", self.name, start, end, error)
                raise _RangeRefused(str(error))
            raise Web3RPCError(f"eth_getLogs({start}, {end}) failed: {error}", rpc_response=response)
        result = response.get("result")
        if not isinstance(result, list):
            raise Web3RPCError(f"eth_getLogs({start}, {end}) answered {response!r}", rpc_response=response)
        return result

    def _hashes(self, numbers: Iterable[int]) -> dict[int, str | None]:
        """The chain's hash at each height (None above the head)."""
        numbers = list(numbers)
        headers = self._headers(numbers)
        return {n: (headers[n].hash if n in headers else None) for n in numbers}

    def _headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        """Headers of the blocks ``numbers`` that exist (JSON-RPC batches where the node can)."""
        found: dict[int, BlockHeader] = {}
        for offset in range(0, len(numbers), _HEADER_BATCH):
            chunk = numbers[offset : offset + _HEADER_BATCH]
            for number, block in self._get_blocks(chunk, full=False):
                if block:
                    found[number] = _block_header(block)
        return found

    def _full_blocks(self, numbers: Sequence[int]) -> Iterable[tuple[int, dict[str, Any] | None]]:
        """(number, block with its transactions, None above the head) in order, read in JSON-RPC batches."""
        for offset in range(0, len(numbers), _BLOCK_BATCH):
            yield from self._get_blocks(numbers[offset : offset + _BLOCK_BATCH], full=True)

    def _get_blocks(self, numbers: Sequence[int], *, full: bool) -> list[tuple[int, dict[str, Any] | None]]:
        """``eth_getBlockByNumber`` of each of ``numbers`` in one JSON-RPC batch (raw, no web3 formatting)."""
        calls = [(RPCEndpoint("eth_getBlockByNumber"), [hex(n), full]) for n in numbers]
        out: list[tuple[int, dict[str, Any] | None]] = []
        for number, response in zip(numbers, self._batch(calls), strict=True):
            if response.get("error"):
                raise Web3RPCError(f"eth_getBlockByNumber({number}) failed: {response['error']}")
            out.append((number, response.get("result") or None))
        return out

    def _batch(self, calls: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse]:
        provider = self.w3.provider
        batch = getattr(provider, "make_batch_request", None)
        if batch is not None and len(calls) > 1:
            try:
                responses = _guard(lambda: batch(calls))
            except NotImplementedError:
                responses = None
            if isinstance(responses, list):
                return responses
            if isinstance(responses, dict):  # a node that refuses batches answers with one error
                raise Web3RPCError(f"JSON-RPC batch refused: {responses.get('error')}")
        return [self._request(method, params) for method, params in calls]

    def _request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        provider = self.w3.provider
        return cast(RPCResponse, _guard(lambda: provider.make_request(method, params)))

    # ---- queries ---------------------------------------------------------------------------------

    def cursor(self) -> Cursor | None:
        """The last indexed block."""
        return self.store.cursor(self.name)

    def block(self, number: int) -> BlockHeader | None:
        """A stored block header (blocks with events or ledger transactions, and batch ends, are stored)."""
        return self.store.block(number)

    def events(
        self,
        *,
        event: str | Iterable[str] | None = None,
        grant_id: str | bytes | None = None,
        subject: str | None = None,
        grantee: str | None = None,
        consumer: str | None = None,
        resource: str | bytes | None = None,
        emergency_id: str | bytes | None = None,
        request_id: str | bytes | None = None,
        document_id: str | bytes | None = None,
        account: str | None = None,
        tx_hash: str | bytes | None = None,
        from_block: int | None = None,
        to_block: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[IndexedEvent]:
        """Indexed events matching every given filter, in chain order (block, log index).

        ``subject`` also matches releases, revocations and pauses of that subject's grants (their
        subject is taken from the grant); ``resource`` matches events about one resource
        (releases, documents, catalog entries), not grants or emergencies naming it in a list.
        """
        names = (event,) if isinstance(event, str) else tuple(event or ())
        return self.store.query(
            EventQuery(
                events=names,
                grant_id=_opt(normalize_bytes32, grant_id),
                subject=_opt(normalize_address, subject),
                grantee=_opt(normalize_address, grantee),
                consumer=_opt(normalize_address, consumer),
                resource=_opt(normalize_bytes32, resource),
                emergency_id=_opt(normalize_bytes32, emergency_id),
                request_id=_opt(normalize_bytes32, request_id),
                document_id=_opt(normalize_bytes32, document_id),
                account=_opt(normalize_address, account),
                tx_hash=_opt(normalize_bytes32, tx_hash),
                from_block=from_block,
                to_block=to_block,
                limit=limit,
                offset=offset,
            )
        )

    def transactions(self, from_block: int | None = None, to_block: int | None = None) -> list[IndexedTransaction]:
        """Indexed transactions to the ledger's contracts (reverted ones included) with
        ``from_block <= block_number <= to_block``, in chain order (block, transaction index)."""
        return self.store.transactions(from_block, to_block)

    # ---- background ------------------------------------------------------------------------------

    def run_forever(
        self,
        interval: float = 2.0,
        stop_event: threading.Event | None = None,
        *,
        on_report: Callable[[SyncReport], None] | None = None,
    ) -> None:
        """Sync every ``interval`` seconds until ``stop_event`` is set (for a background thread).

        Errors do not end the loop: they are logged and kept in :attr:`last_error` (a chain that
        does not answer is retried at the next interval).
        """
        stop = stop_event or threading.Event()
        while not stop.is_set():
            try:
                report = self.sync()
            except ChainUnavailable as exc:
                self.last_error = exc
                log.warning("indexer %s: %s", self.name, exc)
            except Exception as exc:  # the thread must survive; the error is kept and logged
                self.last_error = exc
                log.exception("indexer %s: sync failed", self.name)
            else:
                self.last_error = None
                if on_report is not None:
                    on_report(report)
            stop.wait(interval)


# ---- helpers -----------------------------------------------------------------------------------


def _signed_args(args: Mapping[str, Any]) -> tuple[int, str] | None:
    """The ``deadline`` and ``signature`` a release event carries itself (v1.1), else None."""
    deadline, signature = args.get("deadline"), args.get("signature")
    if deadline is None or not isinstance(signature, str):
        return None
    return int(deadline), signature.lower()


def _block_header(block: Mapping[str, Any]) -> BlockHeader:
    """The header fields of a raw ``eth_getBlockByNumber`` answer."""
    return BlockHeader(
        number=_int(block["number"]),
        hash=_hex(block["hash"]),
        parent_hash=_hex(block["parentHash"]),
        timestamp=_int(block["timestamp"]),
    )


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _opt(normalize: Callable[[Any], str], value: Any) -> str | None:
    return None if value is None else normalize(value)


def _guard(thunk: Callable[[], Any]) -> Any:
    """:func:`chain_client._tx.guard`, plus the HTTP and provider errors of a node going away."""
    try:
        return guard(thunk)
    except (requests.HTTPError, requests.exceptions.ChunkedEncodingError, ProviderConnectionError) as exc:
        raise ChainUnavailable(f"the chain did not answer: {exc.__class__.__name__}: {exc}") from None
