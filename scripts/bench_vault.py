"""Throughput of the vault's envelope encryption against raw AES-256-GCM.

Usage: .venv/bin/python scripts/bench_vault.py   (prints a table and updates BENCHMARKS.md)

What is timed, per document (content of 1 KiB, 100 KiB, 1 MiB of random bytes):

* raw AES-256-GCM: ``AESGCM(key).encrypt(nonce, content, None)`` with one fixed key object and a
  fresh 96-bit nonce from ``os.urandom`` per call (the baseline);
* vault seal: a new data key, ``Profile.encrypt_parts`` of the content under ``content_aad``, and
  ``FileKeyRing.wrap`` of the data key under ``wrap_aad`` (what ``Vault.store_document`` does
  cryptographically, without the database and the chain);
* vault unseal: ``FileKeyRing.unwrap`` of the data key and ``Profile.decrypt_parts`` of the content
  (what ``Vault.read_document`` does cryptographically);
* the SHA-256 commitment ``sha256(salt || content)`` alone;
* vault seal + commitment (everything ``store_document`` computes per document);
* seal and unseal under the SM4-GCM + SM3 profile.

Each figure is the median of RUNS runs; a run repeats the operation until it has taken at least
RUN_SECONDS. Throughput counts content bytes only (MB = 10^6 bytes).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scripts._bench import write_section
from vault import crypto
from vault.crypto import AES_256_GCM, SM4_GCM_SM3
from vault.keyring import FileKeyRing

SIZES = {"1 KiB": 1024, "100 KiB": 100 * 1024, "1 MiB": 1024 * 1024}
RUNS = 7
RUN_SECONDS = 0.15
TARGET = 0.70  # seal and unseal at 1 MiB: at least 70% of raw AES-256-GCM
DOC_ID = os.urandom(32)
SUBJECT = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def throughput(op: Callable[[], object], size: int) -> float:
    """Median MB/s over RUNS runs of ``op`` on a ``size``-byte document."""
    op()  # warm up
    rates = []
    for _ in range(RUNS):
        n, start = 0, time.perf_counter()
        while True:
            op()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= RUN_SECONDS:
                break
        rates.append(n * size / elapsed / 1e6)
    return statistics.median(rates)


def operations(content: bytes, aes_ring: FileKeyRing, sm4_ring: FileKeyRing) -> dict[str, Callable[[], object]]:
    raw = AESGCM(AESGCM.generate_key(bit_length=256))
    aad = crypto.content_aad(DOC_ID, SUBJECT)
    salt = os.urandom(32)

    def raw_aes() -> bytes:
        return raw.encrypt(os.urandom(12), content, None)

    def seal_with(ring: FileKeyRing) -> Callable[[], tuple[tuple[bytes, bytes], bytes]]:
        version = ring.current_version()
        wrap_aad = crypto.wrap_aad(DOC_ID, SUBJECT, version)

        def seal() -> tuple[tuple[bytes, bytes], bytes]:
            data_key = ring.profile.new_key()
            return ring.profile.encrypt_parts(data_key, content, aad), ring.wrap(version, data_key, wrap_aad)

        return seal

    def unseal_with(ring: FileKeyRing) -> Callable[[], bytes]:
        version = ring.current_version()
        wrap_aad = crypto.wrap_aad(DOC_ID, SUBJECT, version)
        (nonce, body), wrapped = seal_with(ring)()

        def unseal() -> bytes:
            return ring.profile.decrypt_parts(ring.unwrap(version, wrapped, wrap_aad), nonce, body, aad)

        assert unseal() == content
        return unseal

    aes_seal = seal_with(aes_ring)

    def seal_and_commit() -> tuple[tuple[bytes, bytes], bytes]:
        return aes_seal(), crypto.commitment(salt, content)

    assert crypto.commitment(salt, content) == hashlib.sha256(salt + content).digest()
    return {
        "raw AES-256-GCM encrypt": raw_aes,
        "vault seal (AES-256-GCM)": aes_seal,
        "vault unseal (AES-256-GCM)": unseal_with(aes_ring),
        "SHA-256 commitment": lambda: crypto.commitment(salt, content),
        "vault seal + commitment": seal_and_commit,
        "vault seal (SM4-GCM)": seal_with(sm4_ring),
        "vault unseal (SM4-GCM)": unseal_with(sm4_ring),
    }


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        aes_ring = FileKeyRing(Path(tmp) / "aes.json", "bench", scrypt_n=2**12)
        sm4_ring = FileKeyRing(Path(tmp) / "sm4.json", "bench", profile_name=SM4_GCM_SM3.name, scrypt_n=2**12)
        assert aes_ring.profile is AES_256_GCM
        results: dict[str, dict[str, float]] = {}
        for label, size in SIZES.items():
            content = os.urandom(size)
            for name, op in operations(content, aes_ring, sm4_ring).items():
                results.setdefault(name, {})[label] = throughput(op, size)
                print(f"  {name:28} {label:>8}: {results[name][label]:10.1f} MB/s", flush=True)

    raw = results["raw AES-256-GCM encrypt"]
    ratios = {
        "seal / raw": {label: results["vault seal (AES-256-GCM)"][label] / raw[label] for label in SIZES},
        "unseal / raw": {label: results["vault unseal (AES-256-GCM)"][label] / raw[label] for label in SIZES},
    }
    big = "1 MiB"
    seal_ok, unseal_ok = ratios["seal / raw"][big] >= TARGET, ratios["unseal / raw"][big] >= TARGET
    verdict = (
        f'Target "vault seal and unseal at >= {TARGET:.0%} of raw AES-256-GCM at 1 MiB": '
        f"seal {ratios['seal / raw'][big]:.0%} ({'met' if seal_ok else 'NOT met'}), "
        f"unseal {ratios['unseal / raw'][big]:.0%} ({'met' if unseal_ok else 'NOT met'})."
    )

    head = "| operation | " + " | ".join(SIZES) + " |\n|---|" + "---:|" * len(SIZES) + "\n"
    table = head + "".join(
        f"| {name} | " + " | ".join(f"{mbps[label]:,.1f}" for label in SIZES) + " |\n" for name, mbps in results.items()
    )
    ratio_table = head + "".join(
        f"| {name} | " + " | ".join(f"{value:.0%}" for value in row.values()) + " |\n" for name, row in ratios.items()
    )
    body = (
        "Command: `.venv/bin/python scripts/bench_vault.py`. Throughput in MB/s (10^6 bytes of document content "
        f"per second), median of {RUNS} runs of at least {RUN_SECONDS} s each, single thread, random content. "
        "Raw = `AESGCM.encrypt` with one fixed key and a fresh `os.urandom` nonce per call. "
        "Vault seal = new data key + `Profile.encrypt_parts` of the content (nonce and body kept apart, as stored) "
        "+ `FileKeyRing.wrap` of the data key; "
        "vault unseal = `FileKeyRing.unwrap` + "
        "`Profile.decrypt_parts`. No database, no chain. The SHA-256 commitment is listed alone and added to the seal "
        "(`store_document` computes both).\n\n"
        + table
        + "\nRatios to raw AES-256-GCM:\n\n"
        + ratio_table
        + "\n"
        + verdict
        + "\n"
    )
    print(body)
    write_section("vault", "Vault seal/unseal throughput (scripts/bench_vault.py)", body)
    print(f"(BENCHMARKS.md updated; {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
