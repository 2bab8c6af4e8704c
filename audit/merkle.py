"""RFC 9162 (Certificate Transparency v2, §2.1) Merkle trees over SHA-256, for the vault's release log.

Hashing (§2.1.1)::

    MTH({})       = SHA-256()                                   (the empty tree)
    leaf hash     = SHA-256(0x00 || d)
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k = largest power of two < n

Proofs are lists of 32-byte hashes in the order the RFC defines them: an inclusion proof is
``PATH(m, D[n])`` (§2.1.3.1, the leaf's sibling first, the root's child last) and a consistency proof is
``PROOF(m, D[n])`` (§2.1.4.1). Verification follows the algorithms of §2.1.3.2 and §2.1.4.2.

Two levels of API:

* functions over the leaf *data* (:func:`root`, :func:`inclusion_proof`, :func:`consistency_proof`) that
  hash every leaf and recompute subtree hashes on each call (O(n));
* :class:`MerkleLog`, an append-only log of leaf hashes that keeps every complete ("perfect") subtree hash,
  so roots and proofs for any past tree size cost O(log² n) hashes at most.

Producing proofs raises :class:`ValueError` on invalid arguments; the ``verify_*`` functions never raise,
they return ``False`` for anything that is not a valid proof (wrong sizes, wrong hash lengths, wrong types).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleLog",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
    "verify_inclusion_hash",
]

HASH_SIZE = 32
"""Length in bytes of every hash (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

_Bytes = bytes | bytearray | memoryview


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf entry."""
    h = hashlib.sha256(_LEAF_PREFIX)
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    h = hashlib.sha256(_NODE_PREFIX)
    h.update(left)
    h.update(right)
    return h.digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _count(value: int, name: str) -> int:
    """``value`` as a non-negative ``int``; ValueError (or TypeError for non-integers) otherwise."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if number < 0:
        raise ValueError(f"{name} must be non-negative, got {number}")
    return number


# --- proof construction over a subtree-hash oracle -------------------------------------------------------------
#
# ``mth(start, end)`` returns MTH(D[start:end]). The recursions of the RFC only ever ask for ranges whose start is
# a multiple of the largest power of two not exceeding their length, so a log can answer most of them from its
# cache of perfect subtrees. Both helpers are the iterative form of the RFC's recursive definitions: they walk
# from the root down, collecting the hashes the recursion appends on the way back up, then reverse them.

_Oracle = Callable[[int, int], bytes]


def _path(mth: _Oracle, m: int, start: int, end: int) -> list[bytes]:
    """PATH(m, D[start:end]) of RFC 9162 §2.1.3.1 (``m`` relative to ``start``)."""
    proof: list[bytes] = []
    while end - start > 1:
        k = _split(end - start)
        if m < k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            proof.append(mth(start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            proof.append(mth(start, start + k))
            start += k
            m -= k
    proof.reverse()
    return proof


def _subproof(mth: _Oracle, m: int, start: int, end: int) -> list[bytes]:
    """SUBPROOF(m, D[start:end], true) of RFC 9162 §2.1.4.1 (``0 < m <= end - start``)."""
    proof: list[bytes] = []
    whole = True  # the "b" flag: D[start:start+m] is the whole original tree
    while m != end - start:
        k = _split(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append(mth(start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append(mth(start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        proof.append(mth(start, end))
    proof.reverse()
    return proof


# --- the incremental log ---------------------------------------------------------------------------------------


class MerkleLog:
    """An append-only RFC 9162 Merkle tree of leaf hashes.

    Storage: level ``j`` holds, packed in one :class:`bytearray`, the hash of every complete subtree of ``2**j``
    leaves (level 0: the leaf hashes), i.e. at most ``2 * 32`` bytes per leaf. Appending costs one leaf
    copy plus one node hash on average. The root of any tree size, and any inclusion or consistency proof, is
    assembled from O(log n) cached subtrees with O(log² n) node hashes at most (in practice a few dozen).

    Not thread-safe: serialise appends against reads.
    """

    __slots__ = ("_levels", "_root_cache", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self._root_cache: bytes | None = EMPTY_ROOT
        self.extend(leaf_hashes)

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleLog:
        """A log of the given leaf *data* (each leaf is hashed with :func:`leaf_hash`)."""
        return cls(leaf_hash(data) for data in leaves)

    # -- appending

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash (32 bytes); return its index."""
        if not isinstance(leaf_hash, _Bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        index = self._size
        levels = self._levels
        levels[0] += leaf_hash
        self._size = size = index + 1
        # Every complete subtree the new leaf finishes: one per trailing 1-bit of the old size.
        level = 0
        while not size & 1:
            h = hashlib.sha256(_NODE_PREFIX)
            h.update(levels[level][-2 * HASH_SIZE :])
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += h.digest()
            size >>= 1
        self._root_cache = None
        return index

    def append_data(self, data: bytes) -> int:
        """Append the leaf ``data`` (hashed with :func:`leaf_hash`); return its index."""
        return self.append(leaf_hash(data))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order (level by level: a third of the time of ``append`` each)."""
        added = bytearray()
        for h in leaf_hashes:
            if not isinstance(h, _Bytes) or len(h) != HASH_SIZE:
                raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
            added += h
        if not added:
            return
        levels = self._levels
        levels[0] += added
        self._size += len(added) // HASH_SIZE
        sha256, pair = hashlib.sha256, 2 * HASH_SIZE
        level = 0
        # Each level holds the hash of every complete pair of the level below: fill in the missing ones.
        while len(levels[level]) >= pair:
            lower = levels[level]
            if level + 1 == len(levels):
                levels.append(bytearray())
            upper = levels[level + 1]
            have, want = len(upper) // HASH_SIZE, len(lower) // pair
            if want > have:
                view = memoryview(lower)
                upper += b"".join(
                    sha256(_NODE_PREFIX + view[i : i + pair]).digest() for i in range(have * pair, want * pair, pair)
                )
                view.release()
            level += 1
        self._root_cache = None

    # -- reading

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        index = _count(index, "index")
        if index >= self._size:
            raise ValueError(f"leaf index {index} out of range for a log of size {self._size}")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self._size if size is None else self._tree_size(size, "size")
        if size == self._size:
            if self._root_cache is None:
                self._root_cache = self._mth(0, size)
            return self._root_cache
        return self._mth(0, size) if size else EMPTY_ROOT

    @property
    def frontier(self) -> list[bytes]:
        """The compact range of the whole log: the roots of its maximal complete subtrees, left to right.

        One hash per 1-bit of :attr:`size`; folding them right to left with :func:`node_hash` gives :meth:`root`.
        """
        nodes: list[bytes] = []
        offset = 0
        for level in reversed(range(self._size.bit_length())):
            if self._size >> level & 1:
                nodes.append(self._node(level, offset >> level))
                offset += 1 << level
        return nodes

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]): the inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self._size if size is None else self._tree_size(size, "size")
        index = _count(index, "index")
        if index >= size:
            raise ValueError(f"leaf index {index} out of range for tree size {size}")
        return _path(self._mth, index, 0, size)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[second]): proves the tree of size ``first`` is a prefix of the tree of size ``second``.

        Empty when ``first`` is 0 or equal to ``second`` (nothing to prove).
        """
        second = self._size if second is None else self._tree_size(second, "second")
        first = _count(first, "first")
        if first > second:
            raise ValueError(f"first tree size {first} is larger than second tree size {second}")
        if first == 0 or first == second:
            return []
        return _subproof(self._mth, first, 0, second)

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for any ``0 <= start < end <= size``."""
        end = self._tree_size(end, "end")
        start = _count(start, "start")
        if start >= end:
            raise ValueError(f"empty or reversed range [{start}, {end})")
        return self._mth(start, end)

    # -- internals

    def _tree_size(self, size: int, name: str) -> int:
        size = _count(size, name)
        if size > self._size:
            raise ValueError(f"{name} {size} exceeds the log size {self._size}")
        return size

    def _node(self, level: int, index: int) -> bytes:
        offset = index * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def _mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]), 0 <= start < end <= size, from cached complete subtrees where possible."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:  # a complete, aligned subtree: cached
            level = n.bit_length() - 1
            return self._node(level, start >> level)
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))


# --- functions over leaf data ----------------------------------------------------------------------------------
#
# These hash the leaves afresh on every call and compute subtree hashes by plain recursion (no cache): O(n) per
# call. They share nothing with MerkleLog's cache, which the tests exploit to check one against the other.


def _leaf_hashes(leaves: Sequence[bytes], size: int, name: str) -> list[bytes]:
    size = _count(size, name)
    if size > len(leaves):
        raise ValueError(f"{name} {size} exceeds the number of leaves {len(leaves)}")
    return [leaf_hash(leaves[i]) for i in range(size)]


def _recursive_oracle(hashes: Sequence[bytes]) -> _Oracle:
    def mth(start: int, end: int) -> bytes:
        if end - start == 1:
            return hashes[start]
        k = _split(end - start)
        return node_hash(mth(start, start + k), mth(start + k, end))

    return mth


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over the leaf data ``leaves``."""
    if not leaves:
        return EMPTY_ROOT
    hashes = _leaf_hashes(leaves, len(leaves), "size")
    return _recursive_oracle(hashes)(0, len(hashes))


def inclusion_proof(leaves: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """PATH(index, D[tree_size]) of RFC 9162 §2.1.3.1 over the first ``tree_size`` of ``leaves``."""
    hashes = _leaf_hashes(leaves, tree_size, "tree_size")
    index = _count(index, "index")
    if index >= len(hashes):
        raise ValueError(f"leaf index {index} out of range for tree size {len(hashes)}")
    return _path(_recursive_oracle(hashes), index, 0, len(hashes))


def consistency_proof(leaves: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 9162 §2.1.4.1 over the first ``second`` of ``leaves``.

    Empty when ``first`` is 0 or equal to ``second`` (nothing to prove).
    """
    hashes = _leaf_hashes(leaves, second, "second")
    first = _count(first, "first")
    if first > len(hashes):
        raise ValueError(f"first tree size {first} is larger than second tree size {len(hashes)}")
    if first == 0 or first == len(hashes):
        return []
    return _subproof(_recursive_oracle(hashes), first, 0, len(hashes))


# --- verification ----------------------------------------------------------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, _Bytes) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _proof_hashes(proof: object) -> list[bytes] | None:
    if isinstance(proof, _Bytes | str) or not isinstance(proof, Sequence):
        return None
    items = list(proof)
    if not all(_is_hash(p) for p in items):
        return None
    return [bytes(p) for p in items]


def verify_inclusion_hash(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` proves that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    The algorithm of RFC 9162 §2.1.3.2. Never raises.

    A proof does not encode the tree size: it also verifies for any other ``tree_size`` whose path to ``index``
    has the same shape (for instance leaf 0 of trees of 3 and 4 leaves). Only accept ``root`` together with the
    ``tree_size`` it was signed with (a checkpoint / signed tree head), as RFC 9162 does.
    """
    path = _proof_hashes(proof)
    if path is None or not (_is_hash(leaf_hash) and _is_hash(root) and _is_count(index) and _is_count(tree_size)):
        return False
    if index >= tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = bytes(leaf_hash)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == bytes(root)


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Like :func:`verify_inclusion_hash`, given the leaf *data*. Never raises."""
    if not isinstance(leaf, _Bytes):
        return False
    return verify_inclusion_hash(leaf_hash(leaf), index, tree_size, proof, root)


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` proves the tree (``first``, ``first_root``) is a prefix of (``second``, ``second_root``).

    The algorithm of RFC 9162 §2.1.4.2 for ``0 < first < second``. Outside that range: for ``first == second``
    the proof must be empty and the roots equal; for ``first == 0`` the proof must be empty and ``first_root``
    the empty-tree hash (:data:`EMPTY_ROOT`). Never raises.

    As with inclusion proofs, the sizes are bound by the roots' tree heads, not by the proof: a proof can also
    verify for other sizes of the same shape (e.g. the proof from 1 to 2 leaves, for 2 to 3 leaves).
    """
    path = _proof_hashes(proof)
    if path is None or not (_is_hash(first_root) and _is_hash(second_root) and _is_count(first) and _is_count(second)):
        return False
    first_root, second_root = bytes(first_root), bytes(second_root)
    if first > second:
        return False
    if first == second:
        return not path and first_root == second_root and (first != 0 or first_root == EMPTY_ROOT)
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    # 0 < first < second
    if not path:  # step 1
        return False
    if first & (first - 1) == 0:  # step 2: first is a power of two
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0  # step 7
