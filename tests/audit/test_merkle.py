"""RFC 9162 §2.1 Merkle trees (vault/merkle.py).

1. Published vectors of transparency-dev/merkle (tests/audit/data/merkle/rfc6962_vectors.json).
2. Brute force against a naive reference written from the RFC's recursive definitions (MTH, PATH, PROOF),
   and Hypothesis comparing MerkleLog with the stateless functions.
3. Tampering: bit flips, wrong index, wrong sizes, wrong roots, malformed proofs.
4. A performance sanity check on 200,000 leaves (marked slow).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleLog,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
    verify_inclusion_hash,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "merkle" / "rfc6962_vectors.json").read_text(encoding="utf-8")
)
LEAVES: list[bytes] = [bytes.fromhex(h) for h in VECTORS["leaves"]]
ROOTS: list[bytes] = [bytes.fromhex(h) for h in VECTORS["roots"]]
NODES: list[list[bytes]] = [[bytes.fromhex(h) for h in level] for level in VECTORS["node_hashes"]]


def _hexes(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _b64(values: Sequence[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


# --- a naive reference, written directly from RFC 9162 §2.1 (independent of vault.merkle) ---------------------


def ref_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = ref_k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# Symbolic shapes: how the root(s) are built from the proof elements P0, P1, ... according to the same recursive
# definitions. A verifier given the proof for one set of parameters can only accept other parameters whose shape
# is identical (anything else combines the hashes differently, i.e. yields a different root).

Expr = str | tuple[Any, ...]


@cache
def inclusion_shape(m: int, n: int) -> tuple[int, Expr]:
    """(proof length, root expression over the leaf "L" and proof elements "P<i>") of PATH(m, D[n])."""

    def walk(m: int, n: int) -> tuple[list[str], Expr]:
        if n == 1:
            return [], "L"
        k = ref_k(n)
        if m < k:
            elems, sub = walk(m, k)
            p = f"P{len(elems)}"
            return [*elems, p], ("H", sub, p)
        elems, sub = walk(m - k, n - k)
        p = f"P{len(elems)}"
        return [*elems, p], ("H", p, sub)

    elems, expr = walk(m, n)
    return len(elems), expr


@cache
def consistency_shape(m: int, n: int) -> tuple[int, Expr, Expr]:
    """(proof length, old-root expression, new-root expression) of PROOF(m, D[n]), 0 < m < n.

    "R1" stands for the first root (used by verifiers when the old tree is itself a node of the new one).
    """

    def walk(m: int, n: int, b: bool) -> tuple[list[str], Expr, Expr]:
        if m == n:
            if b:
                return [], "R1", "R1"
            return ["P0"], "P0", "P0"
        k = ref_k(n)
        if m <= k:
            elems, old, new = walk(m, k, b)
            p = f"P{len(elems)}"
            return [*elems, p], old, ("H", new, p)
        elems, old, new = walk(m - k, n - k, False)
        p = f"P{len(elems)}"
        return [*elems, p], ("H", p, old), ("H", p, new)

    elems, old, new = walk(m, n, True)
    return len(elems), old, new


def distinct_leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- 1. published vectors ----------------------------------------------------------------------------------------


def test_vector_file_names_its_source() -> None:
    source = VECTORS["source"]
    assert source["repository"] == "https://github.com/transparency-dev/merkle"
    assert {f["path"] for f in source["files"]} >= {
        "testonly/constants.go",
        "proof/verify_test.go",
        "rfc6962/rfc6962_test.go",
    }
    assert len(LEAVES) == 8 and len(ROOTS) == 9


@pytest.mark.parametrize("case", VECTORS["hasher"], ids=lambda c: c["desc"])
def test_hasher_vectors(case: dict[str, Any]) -> None:
    want = bytes.fromhex(case["want"])
    if case["kind"] == "empty_root":
        assert EMPTY_ROOT == want
        assert root([]) == want
        assert MerkleLog().root() == want
    elif case["kind"] == "leaf":
        data = case["leaf_ascii"].encode() if "leaf_ascii" in case else bytes.fromhex(case["leaf_hex"])
        assert leaf_hash(data) == want
    else:
        assert node_hash(case["left_ascii"].encode(), case["right_ascii"].encode()) == want


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_vectors(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size]
    assert MerkleLog.from_leaves(LEAVES[:size]).root() == ROOTS[size]
    full = MerkleLog.from_leaves(LEAVES)
    assert full.root(size) == ROOTS[size]
    assert ref_mth(LEAVES[:size]) == ROOTS[size]


def test_node_hash_vectors() -> None:
    log = MerkleLog.from_leaves(LEAVES)
    for level, hashes in enumerate(NODES):
        width = 1 << level
        for i, want in enumerate(hashes):
            assert log.subtree_hash(i * width, (i + 1) * width) == want
    assert [log.leaf_hash(i) for i in range(8)] == NODES[0]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_compact_range_vectors(size: int) -> None:
    want = [NODES[level][index] for level, index in VECTORS["compact_ranges"][size]]
    log = MerkleLog.from_leaves(LEAVES[:size])
    assert log.frontier == want
    folded = EMPTY_ROOT
    for i, h in enumerate(reversed(want)):
        folded = h if i == 0 else node_hash(h, folded)
    assert folded == ROOTS[size]


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}-of-{c['tree_size']}")
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    index, size = case["index"], case["tree_size"]
    want = [bytes.fromhex(h) for h in case["proof"]]
    assert inclusion_proof(LEAVES, index, size) == want
    assert MerkleLog.from_leaves(LEAVES).inclusion_proof(index, size) == want
    assert MerkleLog.from_leaves(LEAVES[:size]).inclusion_proof(index) == want
    assert verify_inclusion(LEAVES[index], index, size, want, ROOTS[size])
    assert verify_inclusion_hash(leaf_hash(LEAVES[index]), index, size, want, ROOTS[size])


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['first']}-to-{c['second']}")
def test_consistency_vectors(case: dict[str, Any]) -> None:
    first, second = case["first"], case["second"]
    want = [bytes.fromhex(h) for h in case["proof"]]
    assert consistency_proof(LEAVES, first, second) == want
    assert MerkleLog.from_leaves(LEAVES).consistency_proof(first, second) == want
    assert verify_consistency(first, second, ROOTS[first], ROOTS[second], want)


@pytest.mark.parametrize("case", VECTORS["happy_path_files"]["inclusion"], ids=lambda c: c["path"])
def test_inclusion_happy_path_files(case: dict[str, Any]) -> None:
    index, size = case["leafIdx"], case["treeSize"]
    proof, want_root, want_leaf = (
        _b64(case["proof"]),
        base64.b64decode(case["root"]),
        base64.b64decode(case["leafHash"]),
    )
    assert want_root == ROOTS[size]
    assert want_leaf == leaf_hash(LEAVES[index])
    assert inclusion_proof(LEAVES, index, size) == proof
    assert verify_inclusion_hash(want_leaf, index, size, proof, want_root)


@pytest.mark.parametrize("case", VECTORS["happy_path_files"]["consistency"], ids=lambda c: c["path"])
def test_consistency_happy_path_files(case: dict[str, Any]) -> None:
    first, second = case["size1"], case["size2"]
    proof, root1, root2 = _b64(case["proof"]), base64.b64decode(case["root1"]), base64.b64decode(case["root2"])
    assert (root1, root2) == (ROOTS[first], ROOTS[second])
    assert consistency_proof(LEAVES, first, second) == proof
    assert verify_consistency(first, second, root1, root2, proof)


# --- 2. brute force against the reference ---------------------------------------------------------------------

BRUTE_LEAVES = distinct_leaves(64)
BRUTE_LOG = MerkleLog.from_leaves(BRUTE_LEAVES)


@pytest.mark.parametrize("size", range(1, 65))
def test_brute_force_against_reference(size: int) -> None:
    d = BRUTE_LEAVES[:size]
    tree_root = ref_mth(d)
    assert root(d) == tree_root
    assert BRUTE_LOG.root(size) == tree_root
    for m in range(size):
        want = ref_path(m, d)
        assert inclusion_proof(BRUTE_LEAVES, m, size) == want
        assert BRUTE_LOG.inclusion_proof(m, size) == want
        assert verify_inclusion(d[m], m, size, want, tree_root)
    for first in range(size + 1):
        want = ref_proof(first, d) if 0 < first < size else []
        assert consistency_proof(BRUTE_LEAVES, first, size) == want
        assert BRUTE_LOG.consistency_proof(first, size) == want
        assert verify_consistency(first, size, ref_mth(d[:first]), tree_root, want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=1, max_value=3000), st.data())
def test_log_matches_functions(n: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") * (1 + i % 3) for i in range(n)]
    checkpoints = set(data.draw(st.lists(st.integers(1, n), max_size=5), label="checkpoints"))
    log = MerkleLog()
    for i, leaf in enumerate(leaves):
        assert log.append(leaf_hash(leaf)) == i
        if i + 1 in checkpoints:  # interleave reads with appends (root cache invalidation)
            assert log.root() == root(leaves[: i + 1])
    assert log.size == len(log) == n
    assert log.root() == root(leaves)

    size = data.draw(st.integers(1, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = log.inclusion_proof(index, size)
    assert proof == inclusion_proof(leaves, index, size)
    assert verify_inclusion(leaves[index], index, size, proof, root(leaves[:size]))

    second = data.draw(st.integers(0, n), label="second")
    first = data.draw(st.integers(0, second), label="first")
    cproof = log.consistency_proof(first, second)
    assert cproof == consistency_proof(leaves, first, second)
    assert verify_consistency(first, second, log.root(first), log.root(second), cproof)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=65, max_value=400), st.data())
def test_random_sizes_against_reference(n: int, data: st.DataObject) -> None:
    leaves = distinct_leaves(n)
    log = MerkleLog.from_leaves(leaves)
    assert log.root() == ref_mth(leaves)
    index = data.draw(st.integers(0, n - 1), label="index")
    assert log.inclusion_proof(index) == ref_path(index, leaves)
    first = data.draw(st.integers(1, n), label="first")
    assert log.consistency_proof(first) == (ref_proof(first, leaves) if first < n else [])


def test_frontier_folds_to_root() -> None:
    log = MerkleLog()
    for i in range(300):
        frontier = log.frontier
        assert len(frontier) == bin(log.size).count("1")
        folded = EMPTY_ROOT if not frontier else frontier[-1]
        for h in reversed(frontier[:-1]):
            folded = node_hash(h, folded)
        assert folded == log.root()
        log.append_data(f"{i}".encode())


def test_constructor_and_extend() -> None:
    hashes = [leaf_hash(x) for x in BRUTE_LEAVES[:10]]
    a = MerkleLog(hashes)
    b = MerkleLog()
    b.extend(hashes[:4])
    b.extend(iter(hashes[4:]))
    c = MerkleLog()
    for x in BRUTE_LEAVES[:10]:
        c.append_data(x)
    assert a.root() == b.root() == c.root() == ref_mth(BRUTE_LEAVES[:10])
    as_bytearrays: list[Any] = [bytearray(h) for h in hashes]  # bytes-like input is accepted at run time
    assert MerkleLog(as_bytearrays).root() == a.root()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8))
def test_extend_in_any_pieces_equals_appending_one_by_one(pieces: list[int]) -> None:
    """The level-by-level ``extend`` builds the same tree as ``append``, whatever the log held before."""
    leaves = distinct_leaves(sum(pieces))
    hashes = [leaf_hash(x) for x in leaves]
    extended, appended, done = MerkleLog(), MerkleLog(), 0
    for count in pieces:
        extended.extend(hashes[done : done + count])
        for h in hashes[done : done + count]:
            appended.append(h)
        done += count
        assert extended._levels == appended._levels and extended.size == appended.size == done
        assert extended.root() == (ref_mth(leaves[:done]) if done else EMPTY_ROOT)


# --- 3. tampering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [*range(1, 17), 31, 32, 33])
def test_inclusion_tampering(size: int) -> None:
    d = distinct_leaves(size)
    tree_root = ref_mth(d)
    other_roots = [ref_mth(d[:s]) for s in range(size)] + [ref_mth(distinct_leaves(size + 1)), EMPTY_ROOT]
    for m in range(size):
        proof = ref_path(m, d)
        assert verify_inclusion(d[m], m, size, proof, tree_root)
        # every bit of every proof element
        for i, element in enumerate(proof):
            for bit in range(8 * HASH_SIZE):
                bad = [*proof[:i], flipped(element, bit), *proof[i + 1 :]]
                assert not verify_inclusion(d[m], m, size, bad, tree_root)
        # every bit of the root, and the roots of other trees
        for bit in range(8 * HASH_SIZE):
            assert not verify_inclusion(d[m], m, size, proof, flipped(tree_root, bit))
        for other in other_roots:
            assert not verify_inclusion(d[m], m, size, proof, other)
        # every other index, in range or not
        for j in [*range(size), size, size + 1, 2 * size, -1]:
            if j != m:
                assert not verify_inclusion(d[m], j, size, proof, tree_root)
        # wrong leaf
        assert not verify_inclusion(d[m] + b"!", m, size, proof, tree_root)
        assert not verify_inclusion_hash(leaf_hash(d[m])[::-1], m, size, proof, tree_root)
        # wrong sizes: always rejected for 2*size and size//2 (the probes of transparency-dev/merkle); for any
        # other size, accepted exactly when PATH has the same shape (the proof does not encode the size: the
        # signed tree head binds root and size).
        assert not verify_inclusion(d[m], m, 2 * size, proof, tree_root)
        assert not verify_inclusion(d[m], m, size // 2, proof, tree_root)
        for other_size in range(0, 2 * size + 2):
            if other_size != size:
                same = other_size > m and inclusion_shape(m, other_size) == inclusion_shape(m, size)
                assert verify_inclusion(d[m], m, other_size, proof, tree_root) == same, (m, size, other_size)
        # structural changes
        if proof:
            assert not verify_inclusion(d[m], m, size, proof[:-1], tree_root)
            assert not verify_inclusion(d[m], m, size, proof[1:], tree_root)
            assert not verify_inclusion(d[m], m, size, proof[::-1], tree_root) or len(set(proof)) == 1
        assert not verify_inclusion(d[m], m, size, [*proof, tree_root], tree_root)
        assert not verify_inclusion(d[m], m, size, [tree_root, *proof], tree_root)
        assert not verify_inclusion(d[m], m, size, [*proof, b""], tree_root)
        assert not verify_inclusion(d[m], m, size, [b"", *proof], tree_root)


@pytest.mark.parametrize("second", [*range(2, 17), 31, 32, 33])
def test_consistency_tampering(second: int) -> None:
    d = distinct_leaves(second)
    roots = [ref_mth(d[:s]) for s in range(second + 1)]
    for first in range(1, second):
        proof = ref_proof(first, d)
        r1, r2 = roots[first], roots[second]
        assert verify_consistency(first, second, r1, r2, proof)
        for i, element in enumerate(proof):
            for bit in range(8 * HASH_SIZE):
                bad = [*proof[:i], flipped(element, bit), *proof[i + 1 :]]
                assert not verify_consistency(first, second, r1, r2, bad)
        for bit in range(0, 8 * HASH_SIZE, 7):
            assert not verify_consistency(first, second, flipped(r1, bit), r2, proof)
            assert not verify_consistency(first, second, r1, flipped(r2, bit), proof)
        for s, other in enumerate(roots):
            if s != first:
                assert not verify_consistency(first, second, other, r2, proof)
            if s != second:
                assert not verify_consistency(first, second, r1, other, proof)
        assert not verify_consistency(first, second, r2, r1, proof)
        assert not verify_consistency(first, second, r1, r2, [])
        assert not verify_consistency(first, second, r1, r2, proof[:-1])
        for extra in (b"", r1, r2, proof[0]):
            assert not verify_consistency(first, second, r1, r2, [*proof, extra])
            assert not verify_consistency(first, second, r1, r2, [extra, *proof])
        # wrong sizes: accepted exactly when PROOF has the same shape (see test_inclusion_tampering)
        want_shape = consistency_shape(first, second)
        for f in range(0, second + 2):
            for s in range(f, 2 * second + 2):
                if (f, s) == (first, second):
                    continue
                same = 0 < f < s and consistency_shape(f, s) == want_shape
                assert verify_consistency(f, s, r1, r2, proof) == same, (first, second, f, s)


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"][1:], ids=lambda c: f"{c['first']}-to-{c['second']}")
def test_consistency_vector_probes(case: dict[str, Any]) -> None:
    """The corruptions of transparency-dev/merkle's corruptConsistencyProof, applied to the published vectors."""
    first, second = case["first"], case["second"]
    proof = [bytes.fromhex(h) for h in case["proof"]]
    r1, r2 = ROOTS[first], ROOTS[second]
    for f, s in [(first - 1, second), (first + 1, second), (first ^ 2, second), (first, second * 2)]:
        assert not verify_consistency(f, s, r1, r2, proof)
    assert not verify_consistency(first, second // 2, r1, r2, proof)
    assert not verify_consistency(first, second, b"WrongRoot", r2, proof)
    assert not verify_consistency(first, second, r1, b"WrongRoot", proof)


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}-of-{c['tree_size']}")
def test_inclusion_vector_probes(case: dict[str, Any]) -> None:
    """The corruptions of transparency-dev/merkle's corruptInclusionProof, applied to the published vectors."""
    index, size = case["index"], case["tree_size"]
    proof = [bytes.fromhex(h) for h in case["proof"]]
    h, r = leaf_hash(LEAVES[index]), ROOTS[size]
    some_hash = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (index - 1, size, h, r, proof),
        (index + 1, size, h, r, proof),
        (index ^ 2, size, h, r, proof),
        (index, size * 2, h, r, proof),
        (index, size // 2, h, r, proof),
        (index, size, b"WrongLeaf", r, proof),
        (index, size, h, EMPTY_ROOT, proof),
        (index, size, h, some_hash, proof),
        (index, size, h, r, [*proof, b""]),
        (index, size, h, r, [*proof, r]),
        (index, size, h, r, [b"", *proof]),
        (index, size, h, r, [r, *proof]),
    ]
    for i in range(len(proof)):
        probes.append((index, size, h, r, [*proof[:i], flipped(proof[i], 3), *proof[i + 1 :]]))
    if proof:
        probes.append((index, size, h, r, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, h, r, [proof[0], some_hash, *proof[1:]]))
    assert verify_inclusion_hash(h, index, size, proof, r)
    for probe_index, probe_size, probe_leaf, probe_root, probe_proof in probes:
        assert not verify_inclusion_hash(probe_leaf, probe_index, probe_size, probe_proof, probe_root), (
            probe_index,
            probe_size,
        )


def test_edge_cases_of_verification() -> None:
    h = leaf_hash(b"data")
    assert verify_inclusion_hash(h, 0, 1, [], h)
    assert verify_inclusion(b"data", 0, 1, [], h)
    assert verify_inclusion(bytearray(b"data"), 0, 1, [], h) and verify_inclusion(memoryview(b"data"), 0, 1, [], h)
    assert not verify_inclusion("data", 0, 1, [], h)  # type: ignore[arg-type]  # not bytes: no leaf at all
    assert not verify_inclusion(None, 0, 1, [], h)  # type: ignore[arg-type]
    assert not verify_inclusion_hash(h, 0, 1, [], b"")
    assert not verify_inclusion_hash(b"", 0, 1, [], h)
    assert not verify_inclusion_hash(h, 0, 0, [], h)
    assert not verify_inclusion_hash(h, 1, 1, [], h)
    # Same size: empty proof, equal roots. Empty first tree: empty proof, first root = MTH({}).
    r = ROOTS[5]
    assert verify_consistency(5, 5, r, r, [])
    assert not verify_consistency(5, 5, r, ROOTS[4], [])
    assert not verify_consistency(5, 5, r, r, [r])
    assert verify_consistency(0, 5, EMPTY_ROOT, r, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, r, r, [])
    assert not verify_consistency(0, 5, r, r, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, r, [r])
    assert not verify_consistency(6, 5, r, r, [])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=40), st.none(), st.integers(), st.text(max_size=3)),
    st.one_of(st.integers(min_value=-5, max_value=40), st.none(), st.booleans(), st.floats(allow_nan=False)),
    st.one_of(st.integers(min_value=-5, max_value=40), st.none(), st.text(max_size=2)),
    st.one_of(
        st.lists(st.one_of(st.binary(min_size=30, max_size=34), st.none(), st.integers()), max_size=8),
        st.binary(max_size=64),
        st.none(),
        st.text(max_size=4),
    ),
    st.one_of(st.binary(min_size=31, max_size=33), st.none(), st.text(max_size=2)),
)
def test_verification_never_raises(leaf: Any, a: Any, b: Any, proof: Any, some_root: Any) -> None:
    for result in (
        verify_inclusion(leaf, a, b, proof, some_root),
        verify_inclusion_hash(leaf, a, b, proof, some_root),
        verify_consistency(a, b, leaf, some_root, proof),
    ):
        assert isinstance(result, bool)


def test_invalid_arguments_raise_value_error() -> None:
    leaves = distinct_leaves(8)
    log = MerkleLog.from_leaves(leaves)
    cases = [
        (lambda: inclusion_proof(leaves, 8, 8), "out of range"),
        (lambda: inclusion_proof(leaves, 3, 3), "out of range"),
        (lambda: inclusion_proof(leaves, 0, 0), "out of range"),
        (lambda: inclusion_proof(leaves, -1, 8), "non-negative"),
        (lambda: inclusion_proof(leaves, 0, 9), "exceeds"),
        (lambda: inclusion_proof(leaves, 0, -1), "non-negative"),
        (lambda: consistency_proof(leaves, 5, 4), "larger than"),
        (lambda: consistency_proof(leaves, 1, 9), "exceeds"),
        (lambda: consistency_proof(leaves, -1, 4), "non-negative"),
        (lambda: log.inclusion_proof(8), "out of range"),
        (lambda: log.inclusion_proof(2, 2), "out of range"),
        (lambda: log.inclusion_proof(0, 9), "exceeds"),
        (lambda: log.inclusion_proof(-1), "non-negative"),
        (lambda: log.consistency_proof(5, 4), "larger than"),
        (lambda: log.consistency_proof(9), "larger than"),
        (lambda: log.consistency_proof(1, 9), "exceeds"),
        (lambda: log.consistency_proof(-2, 4), "non-negative"),
        (lambda: log.root(9), "exceeds"),
        (lambda: log.root(-1), "non-negative"),
        (lambda: log.leaf_hash(8), "out of range"),
        (lambda: log.subtree_hash(3, 3), "empty"),
        (lambda: log.subtree_hash(0, 9), "exceeds"),
        (lambda: log.append(b"short"), "32 bytes"),
        (lambda: log.append(b"x" * 33), "32 bytes"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError):
        log.root(1.5)  # type: ignore[arg-type]
    assert log.size == 8  # failed appends left the log untouched
    assert log.root() == ref_mth(leaves)
    assert log.consistency_proof(0, 8) == log.consistency_proof(8) == log.consistency_proof(3, 3) == []
    assert MerkleLog().root(0) == EMPTY_ROOT


# --- 4. performance ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_performance_200k() -> None:
    n = 200_000
    leaves = [i.to_bytes(8, "big") for i in range(n)]
    log = MerkleLog()
    t0 = time.perf_counter()
    for leaf in leaves:
        log.append_data(leaf)
    t_append = time.perf_counter() - t0

    t0 = time.perf_counter()
    tree_root = log.root()
    t_root = time.perf_counter() - t0

    t0 = time.perf_counter()
    past_root = log.root(123_457)
    t_past_root = time.perf_counter() - t0

    indices = [0, 1, 65_535, 99_999, 131_072, 199_998, n - 1]
    t0 = time.perf_counter()
    proofs = [log.inclusion_proof(i) for i in indices]
    t_inclusion = (time.perf_counter() - t0) / len(indices)
    for i, proof in zip(indices, proofs, strict=True):
        assert verify_inclusion(leaves[i], i, n, proof, tree_root)
    past_proof = log.inclusion_proof(100_000, 123_457)
    assert verify_inclusion(leaves[100_000], 100_000, 123_457, past_proof, past_root)

    pairs = [(1, n), (65_536, n), (123_457, n), (99_999, 199_999), (n - 1, n)]
    t0 = time.perf_counter()
    cproofs = [log.consistency_proof(f, s) for f, s in pairs]
    t_consistency = (time.perf_counter() - t0) / len(pairs)
    for (f, s), proof in zip(pairs, cproofs, strict=True):
        assert verify_consistency(f, s, log.root(f), log.root(s), proof)

    t0 = time.perf_counter()
    function_root = root(leaves)
    t_function_root = time.perf_counter() - t0
    assert function_root == tree_root

    print(
        f"\nMerkleLog, {n} leaves: append {t_append:.3f} s ({t_append / n * 1e6:.2f} µs/leaf); "
        f"root {t_root * 1e3:.3f} ms; root(123457) {t_past_root * 1e3:.3f} ms; "
        f"inclusion proof {t_inclusion * 1e3:.3f} ms; consistency proof {t_consistency * 1e3:.3f} ms; "
        f"root() function over the data {t_function_root:.3f} s"
    )


def test_each_error_names_the_argument_and_the_bound() -> None:
    """The exact message of every refusal: which argument, its value, and the bound it broke."""
    leaves = distinct_leaves(8)
    log = MerkleLog.from_leaves(leaves)
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: log.leaf_hash(8), ValueError, "leaf index 8 out of range for a log of size 8"),
        (lambda: log.leaf_hash(-1), ValueError, "index must be non-negative, got -1"),
        (lambda: log.leaf_hash(1.0), TypeError, "index must be an integer, not float"),
        (lambda: log.root(9), ValueError, "size 9 exceeds the log size 8"),
        (lambda: log.root(-1), ValueError, "size must be non-negative, got -1"),
        (lambda: log.root("1"), TypeError, "size must be an integer, not str"),
        (lambda: log.inclusion_proof(0, 9), ValueError, "size 9 exceeds the log size 8"),
        (lambda: log.inclusion_proof(0, -3), ValueError, "size must be non-negative, got -3"),
        (lambda: log.inclusion_proof(-1), ValueError, "index must be non-negative, got -1"),
        (lambda: log.inclusion_proof(None), TypeError, "index must be an integer, not NoneType"),
        (lambda: log.inclusion_proof(2, 2), ValueError, "leaf index 2 out of range for tree size 2"),
        (lambda: log.inclusion_proof(8), ValueError, "leaf index 8 out of range for tree size 8"),
        (lambda: log.consistency_proof(1, 9), ValueError, "second 9 exceeds the log size 8"),
        (lambda: log.consistency_proof(1, -1), ValueError, "second must be non-negative, got -1"),
        (lambda: log.consistency_proof(-2, 4), ValueError, "first must be non-negative, got -2"),
        (lambda: log.consistency_proof(b"", 4), TypeError, "first must be an integer, not bytes"),
        (lambda: log.consistency_proof(5, 4), ValueError, "first tree size 5 is larger than second tree size 4"),
        (lambda: log.consistency_proof(9), ValueError, "first tree size 9 is larger than second tree size 8"),
        (lambda: log.subtree_hash(0, 9), ValueError, "end 9 exceeds the log size 8"),
        (lambda: log.subtree_hash(0, -1), ValueError, "end must be non-negative, got -1"),
        (lambda: log.subtree_hash(-1, 3), ValueError, "start must be non-negative, got -1"),
        (lambda: log.subtree_hash(0.5, 3), TypeError, "start must be an integer, not float"),
        (lambda: log.subtree_hash(3, 3), ValueError, "empty or reversed range [3, 3)"),
        (lambda: log.subtree_hash(5, 3), ValueError, "empty or reversed range [5, 3)"),
        (lambda: log.append(b"short"), ValueError, "a leaf hash must be 32 bytes"),
        (lambda: log.extend([bytes(32), b"x" * 33]), ValueError, "a leaf hash must be 32 bytes"),
        (lambda: log.extend(["a" * 32]), ValueError, "a leaf hash must be 32 bytes"),
        (lambda: inclusion_proof(leaves, 0, 9), ValueError, "tree_size 9 exceeds the number of leaves 8"),
        (lambda: inclusion_proof(leaves, 0, -1), ValueError, "tree_size must be non-negative, got -1"),
        (lambda: inclusion_proof(leaves, 0, 2.0), TypeError, "tree_size must be an integer, not float"),
        (lambda: inclusion_proof(leaves, -1, 8), ValueError, "index must be non-negative, got -1"),
        (lambda: inclusion_proof(leaves, "0", 8), TypeError, "index must be an integer, not str"),
        (lambda: inclusion_proof(leaves, 8, 8), ValueError, "leaf index 8 out of range for tree size 8"),
        (lambda: inclusion_proof(leaves, 3, 3), ValueError, "leaf index 3 out of range for tree size 3"),
        (lambda: consistency_proof(leaves, 1, 9), ValueError, "second 9 exceeds the number of leaves 8"),
        (lambda: consistency_proof(leaves, 1, -2), ValueError, "second must be non-negative, got -2"),
        (lambda: consistency_proof(leaves, -1, 4), ValueError, "first must be non-negative, got -1"),
        (lambda: consistency_proof(leaves, None, 4), TypeError, "first must be an integer, not NoneType"),
        (lambda: consistency_proof(leaves, 5, 4), ValueError, "first tree size 5 is larger than second tree size 4"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind) as raised:
            call()
        assert str(raised.value) == message
        assert raised.value.__cause__ is None
    assert log.size == 8 and log.root() == ref_mth(leaves)  # the failed appends and extends changed nothing


def test_verification_refuses_a_size_or_a_root_of_the_wrong_type() -> None:
    """A proof that verifies is refused as soon as one size is not a non-negative int (a bool, a float) or one
    root is not 32 bytes, whichever of the arguments it is and whatever the others are."""
    leaves = distinct_leaves(5)
    log = MerkleLog.from_leaves(leaves)
    r1, r5 = log.root(1), log.root(5)
    proof = log.consistency_proof(1, 5)
    assert verify_consistency(1, 5, r1, r5, proof)
    assert not verify_consistency(True, 5, r1, r5, proof)
    assert not verify_consistency(1, 5.0, r1, r5, proof)  # type: ignore[arg-type]
    assert verify_consistency(1, 1, r1, r1, [])
    assert not verify_consistency(1, True, r1, r1, [])
    assert not verify_consistency(True, 1, r1, r1, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, r5[:31], [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, b"", [])
    assert not verify_consistency(5, 5, b"", b"", [])
    assert not verify_consistency(5, 5, r5 + b"\0", r5 + b"\0", [])
    assert not verify_consistency(False, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, False, EMPTY_ROOT, EMPTY_ROOT, [])
    path = log.inclusion_proof(1, 5)
    assert verify_inclusion(leaves[1], 1, 5, path, r5)
    assert not verify_inclusion(leaves[1], True, 5, path, r5)
    assert not verify_inclusion(leaves[1], 1, 5.0, path, r5)  # type: ignore[arg-type]
    assert not verify_inclusion(leaves[1], 1, 5, path, r5[:31])
    assert not verify_inclusion_hash(leaf_hash(leaves[1])[:31], 1, 5, path, r5)
