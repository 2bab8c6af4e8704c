"""Speed of audit verification (SPEC §7, checks 1-4) over synthetic trails.

Usage: .venv/bin/python scripts/bench_verify.py [--releases 1000000] [--index 200000] [--workers N]
(prints a table and updates BENCHMARKS.md).

What is measured:

* ``in memory``: :class:`audit.verify.Verifier` over a :mod:`audit.synthetic` trail of
  ``--releases`` releases (100 grantees, 1,000 subjects, 10,000 grants, grouped releases of 50,
  a checkpoint every 1,000 log entries, 2,000 names and organisation codes searched for in the
  calldata). Every release's signature is a real secp256k1 signature over its EIP-712 digest and
  is checked. Timed from the call to the report, once with the worker processes not yet started
  (a first verify in a fresh process) and once with them running (the API keeps them).
* ``from the index``: the same kind of trail of ``--index`` releases written into the indexer's
  tables (SQLite, in a temporary directory) and verified through :class:`audit.trail.IndexTrail`,
  i.e. including reading and decoding every row.

Records per second = releases verified / wall-clock seconds. Generation is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts._bench import write_section


def _timed(verifier: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    report = verifier.verify(**kwargs)
    return time.perf_counter() - started, report


def in_memory(releases: int, workers: int) -> list[tuple[str, int, float, Any]]:
    from audit import synthetic, verify

    print(f"building a synthetic trail of {releases:,} releases …", flush=True)
    started = time.perf_counter()
    trail = synthetic.build(releases, workers=workers)
    print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    rows = []
    cold, report = _timed(verify.Verifier(trail, workers=workers))
    rows.append(("in memory, workers starting", releases, cold, report))
    verify.warm_up(workers)
    warm, report = _timed(verify.Verifier(trail, workers=workers))
    rows.append(("in memory, workers running", releases, warm, report))
    return rows


class _Ledger:
    """The two things IndexTrail asks of a ledger besides the index: the domain and the threshold."""

    def __init__(self, domain: Any) -> None:
        self._domain = domain

        class _Deployment:
            deploy_block = 0

        self.deployment = _Deployment()

    def domain(self) -> Any:
        return self._domain


def from_index(releases: int, workers: int) -> tuple[str, int, float, Any]:
    from audit import synthetic, verify
    from audit.trail import IndexTrail
    from chain_client.indexer import KEY_COLUMNS, event_key_columns
    from db.index_store import SqlIndexStore
    from db.models import IndexedBlock, LedgerEvent, LedgerTransaction
    from db.store import Store

    print(f"writing a synthetic trail of {releases:,} releases into a SQLite index …", flush=True)
    trail = synthetic.build(releases, workers=workers)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.sqlite(Path(tmp) / "index.sqlite")
        blocks = sorted({e.block_number for e in trail.events_list})
        with store.session() as s:
            s.execute(
                IndexedBlock.__table__.insert(),
                [
                    {
                        "number": n,
                        "hash": f"0x{n:064x}",
                        "parent_hash": f"0x{n - 1:064x}",
                        "timestamp": 1_800_000_000 + 2 * n,
                    }
                    for n in blocks
                ],
            )
            rows = []
            for e in trail.events_list:
                args = dict(e.args)
                row = {
                    "block_number": e.block_number,
                    "block_hash": f"0x{e.block_number:064x}",
                    "log_index": e.log_index,
                    "tx_hash": e.tx_hash,
                    "tx_index": 0,
                    "contract": "0x" + "5a" * 20,
                    "event": e.name,
                    "args": json.dumps(args, separators=(",", ":")),
                    # the release events' own deadline and signature, copied to their columns as the indexer does
                    "deadline": None if args.get("deadline") is None else str(args["deadline"]),
                    "signature": args.get("signature"),
                }
                row.update({c: v for c, v in event_key_columns(args).items() if c in KEY_COLUMNS})
                rows.append(row)
            for offset in range(0, len(rows), 50_000):
                s.execute(LedgerEvent.__table__.insert(), rows[offset : offset + 50_000])
            s.execute(
                LedgerTransaction.__table__.insert(),
                [
                    {
                        "hash": h,
                        "block_number": b,
                        "block_hash": f"0x{b:064x}",
                        "tx_index": i,
                        "sender": "0x" + "11" * 20,
                        "recipient": "0x" + "5a" * 20,
                        "input": "0x" + data.hex(),
                    }
                    for i, (b, h, data) in enumerate(trail.transactions_list)
                ],
            )

        class _Indexer:
            ledger = _Ledger(synthetic.DOMAIN)

            def __init__(self) -> None:
                self.store = SqlIndexStore(store)

            def cursor(self) -> Any:
                class _C:
                    number = trail.head_block

                return _C()

            def transactions(self, from_block: int | None = None, to_block: int | None = None) -> Any:
                return self.store.transactions(from_block, to_block)

        source = IndexTrail(_Indexer(), log_entries=lambda: trail.entries, private_texts=lambda: trail.texts)  # type: ignore[arg-type]
        source._threshold = trail.threshold
        verify.warm_up(workers)
        seconds, report = _timed(verify.Verifier(source, workers=workers))
        store.dispose()
    return ("from the SQLite index, workers running", releases, seconds, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=1_000_000)
    parser.add_argument("--index", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()

    rows = in_memory(args.releases, args.workers)
    if args.index:
        rows.append(from_index(args.index, args.workers))
    lines = [
        "| trail | releases | seconds | releases/s | signatures | log entries | checkpoints | transactions scanned | violations |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, releases, seconds, report in rows:
        assert report.ok and report.releases == releases, report.violations[:5]
        lines.append(
            f"| {name} | {releases:,} | {seconds:.2f} | {releases / seconds:,.0f} | {report.signatures_checked:,} "
            f"| {report.log_entries:,} | {report.checkpoints:,} | {report.transactions_scanned:,} | {len(report.violations)} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(
            "verify",
            "Audit verification (checks 1-4)",
            f"`.venv/bin/python scripts/bench_verify.py --releases {args.releases} --index {args.index} "
            f"--workers {args.workers}`\n\n{table}\n\n"
            "Targets: at least 50,000 release records per second, and a 1,000,000-release trail in under 30 s. "
            "Every release's signature is verified (libsecp256k1), every rule replayed, every log entry compared "
            "and every checkpoint recomputed; see the script's docstring for the synthetic trail.",
        )


if __name__ == "__main__":
    main()
