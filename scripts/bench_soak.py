"""Soak: a steady load on the service for minutes, sampled every few seconds (`qcl bench soak`).

Usage: .venv/bin/qcl bench soak [--minutes 10] [--release-rate 25] [--grant-rate 10] [--read-rate 5]
[--deployment dev|split] (prints a table and rewrites the "soak" section of BENCHMARKS.md, or
"soak-split", or the section of ``--output``).

What it does, all on this machine:
1. starts anvil and `qcl dev` (API, release relayer, indexer follower and checkpoints in one
   process, SQLite) on free ports, as scripts/bench_release.py does, or with ``--deployment
   split`` `qcl worker` beside `qcl serve` (one API process) on a new PostgreSQL database;
   onboards a provider, a department, the auditor and ``--subjects`` citizens, each with one
   document and one grant to the department;
2. sends, open loop (each request at its scheduled second, whatever the answers before it), sealed
   releases (POST /v1/releases), new grants signed by the citizens (POST /v1/grants) and status
   reads (GET /v1/releases/{id} and GET /v1/grants/{id}, alternately) at the given rates;
3. every ``--interval`` seconds samples: requests done, errors by code, p50/p99 latency in that
   window, resident memory (VmRSS) and CPU time of the API process (and the worker), anvil and the
   load generator, the database's size (SQLite: pages in use, through its WAL; PostgreSQL:
   ``pg_database_size``) and its rows;
4. checks at the end: no error; p99 stable (the last third of the run against the first third,
   releases and grants each); the API process's (and the worker's) resident memory grew less than
   10% from the end of the warm-up to the end; the database and anvil's resident memory (anvil
   keeps the whole chain in memory) grew with the data written (bytes per release or grant,
   second half of the run against the first); every grant answered 2xx is on chain; the release
   log holds exactly the releases answered 2xx; `POST /v1/audit/verify` finds no violation.
Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from chain_client import compile_contracts
from chain_client.ids import RequestIdAllocator
from scripts._bench import (
    BENCHMARKS,
    Dev,
    cpu_seconds,
    dev_deployment,
    memory_kib,
    send,
    signed_grant,
    signed_release,
)
from scripts._bench import write_section as write

KINDS = ("release", "grant", "read")
#: The last third's p99 may be at most this times the first third's (plus :data:`P99_SLACK_MS`).
P99_GROWTH = 1.5
P99_SLACK_MS = 50.0
#: The API process's resident memory may grow at most this much from the end of the warm-up to the end.
RSS_GROWTH = 0.10
#: Bytes added (database, anvil's memory) per release or grant written in the second half of the
#: run may be at most this times the first half's.
DATA_GROWTH = 2.0
SLACK_BYTES = 2**20


@dataclass
class Window:
    """What happened in one sampling window, and the sample taken at its end."""

    end: float  # seconds since the load started
    done: Counter[str] = field(default_factory=Counter)  # 2xx answers by kind
    errors: Counter[str] = field(default_factory=Counter)  # "<kind> <status> <code>" or "<kind> <error>"
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    rss_kib: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds used so far, per process
    db_bytes: int = 0
    rows: int = 0
    load: str = "?"  # the machine's 1-minute load average


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` in milliseconds (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def merged(windows: list[Window], kind: str | None = None) -> list[float]:
    return [x for w in windows for k, xs in w.latencies.items() if kind in (None, k) for x in xs]


def database(dev: Dev) -> tuple[int, int, dict[str, int]]:
    """The deployment's database: :func:`sqlite_database` or :func:`postgres_database`."""
    return postgres_database(dev.database) if dev.database else sqlite_database(dev.data / "vault.db")


def postgres_database(url: str) -> tuple[int, int, dict[str, int]]:
    """The database's size on disk (``pg_database_size``: tables, indexes, dead rows not yet
    vacuumed), the same again for :func:`sqlite_database`'s "on disk", and the rows of each table."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as con:
            size = int(con.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
            tables = con.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
            rows = {t: int(con.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in list(tables)}
    finally:
        engine.dispose()
    return size, size, rows


def sqlite_database(path: Path) -> tuple[int, int, dict[str, int]]:
    """The database's size in use (page count x page size, read through the WAL: what is committed,
    whether or not checkpointed), its file sizes on disk (main + WAL), and the rows of each table."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        used = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
    wal = path.with_name(path.name + "-wal")
    on_disk = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return used, on_disk, rows


class Soak:
    def __init__(self, dev: Dev, args: argparse.Namespace) -> None:
        self.dev, self.args = dev, args
        self.members = dev.members
        self.allocator = RequestIdAllocator()
        self.grants: list[str] = []  # one per citizen, released under
        self.granted: list[str] = []  # every grant answered 2xx during the load
        self.released: list[str] = []  # every release id answered 2xx
        self.retried: dict[str, int] = {}
        self.windows: list[Window] = []
        self.rows: dict[str, int] = {}
        self.disk_bytes = 0
        self.started = 0.0
        self.start = Window(end=0.0)  # sampled when the load starts

    @property
    def pids(self) -> dict[str, int | None]:
        worker = {"worker": self.dev.worker.pid} if self.dev.worker else {}
        return {"API": self.dev.api.pid, **worker, "anvil": self.dev.anvil_pid, "load generator": None}

    @property
    def services(self) -> list[str]:
        """The processes of the service under test (whose memory must not grow)."""
        return [name for name in self.pids if name in ("API", "worker")]

    def sample(self, window: Window) -> None:
        window.rss_kib = {name: memory_kib(pid) for name, pid in self.pids.items()}
        window.cpu_s = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        window.load = load_average().split(" / ")[0]
        used, self.disk_bytes, self.rows = database(self.dev)
        window.db_bytes, window.rows = used, sum(self.rows.values())

    def window(self) -> Window:
        return self.windows[min(len(self.windows) - 1, int((time.monotonic() - self.started) / self.args.interval))]

    async def one(self, http: aiohttp.ClientSession, kind: str, method: str, path: str, body: Any) -> None:
        started = time.monotonic()
        status, payload, error = await send(http, method, path, body, self.retried)
        window = self.window()
        if error is not None or status is None:
            window.errors[f"{kind} {error}"] += 1
            return
        window.latencies[kind].append(time.monotonic() - started)
        if status >= 300:
            window.errors[f"{kind} {status} {(payload or {}).get('code', '?')}"] += 1
            return
        window.done[kind] += 1
        if kind == "release":
            self.released.append(payload["release_id"])
        elif kind == "grant":
            self.granted.append(payload["grant_id"])

    def request(self, kind: str, n: int) -> tuple[str, str, Any]:
        citizens, dept = self.members.citizens, self.members.dept
        if kind == "release":
            return "POST", "/v1/releases", signed_release(dept, self.allocator, self.grants[n % len(self.grants)])
        if kind == "grant":
            return "POST", "/v1/grants", signed_grant(citizens[n % len(citizens)], dept.address)
        if n % 2 and self.released:
            return "GET", f"/v1/releases/{random.choice(self.released[-1000:])}", None
        return "GET", f"/v1/grants/{random.choice((self.granted or self.grants)[-1000:])}", None

    async def stream(
        self, http: aiohttp.ClientSession, kind: str, rate: float, until: float
    ) -> list[asyncio.Task[None]]:
        """Requests of ``kind`` at ``rate`` per second, each at its own scheduled time, until ``until``."""
        tasks: list[asyncio.Task[None]] = []
        if rate <= 0:
            return tasks
        n = 0
        while True:
            at = self.started + n / rate
            if at >= until:
                return tasks
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            method, path, body = self.request(kind, n)
            tasks.append(asyncio.create_task(self.one(http, kind, method, path, body)))
            tasks = [t for t in tasks if not t.done()] if n % 256 == 0 else tasks
            n += 1

    async def sampler(self, until: float) -> None:
        for window in self.windows:
            await asyncio.sleep(max(0.0, self.started + window.end - time.monotonic()))
            if window is self.windows[-1]:
                return  # the last one is sampled once every request has been answered
            await asyncio.to_thread(self.sample, window)
            self.print_window(window)

    def print_window(self, w: Window) -> None:
        rss = " / ".join(f"{w.rss_kib.get(k, 0) / 1024:.0f}" for k in self.pids)
        errors = sum(w.errors.values())
        print(
            f"{w.end:7.0f} s  done {sum(w.done.values()):5d}  errors {errors:3d}  p50 {pct(merged([w]), 0.5):6.0f}"
            f"  p99 {pct(merged([w]), 0.99):6.0f} ms  releases p99 {pct(w.latencies['release'], 0.99):6.0f} ms"
            f"  RSS {' / '.join(self.pids)} {rss} MiB  db {w.db_bytes / 2**20:.1f} MiB  rows {w.rows:,}  load {w.load}"
            + ("  (" + ", ".join(f"{k}: {v}" for k, v in sorted(w.errors.items())) + ")" if w.errors else ""),
            flush=True,
        )

    async def run(self) -> None:
        args, dept = self.args, self.members.dept
        seconds = args.minutes * 60
        headers = {"Authorization": f"Bearer {dept.token}"}
        connector = aiohttp.TCPConnector(limit=args.connections)
        timeout = aiohttp.ClientTimeout(total=120.0)
        async with aiohttp.ClientSession(self.dev.url, headers=headers, connector=connector, timeout=timeout) as http:
            for citizen in self.members.citizens:  # one grant per citizen to release under
                status, payload, error = await send(
                    http, "POST", "/v1/grants", signed_grant(citizen, dept.address), self.retried
                )
                assert status == 201, (status, payload, error)
                self.grants.append(payload["grant_id"])
            count = max(1, round(seconds / args.interval))
            self.windows = [Window(end=seconds * (i + 1) / count) for i in range(count)]
            self.start = Window(end=0.0)
            self.sample(self.start)
            self.started = time.monotonic()
            until = self.started + seconds
            streams = await asyncio.gather(
                self.stream(http, "release", args.release_rate, until),
                self.stream(http, "grant", args.grant_rate, until),
                self.stream(http, "read", args.read_rate, until),
                self.sampler(until),
            )
            await asyncio.gather(*(t for tasks in streams if tasks for t in tasks))
        self.sample(self.windows[-1])
        self.print_window(self.windows[-1])


@dataclass
class Check:
    name: str
    ok: bool
    figures: str


def grows_with_data(name: str, windows: list[Window], base: Window, size: Callable[[Window], int]) -> Check:
    """Bytes added per release or grant written, in each half of the run after ``base`` (the end of
    the warm-up): the second half's may be at most :data:`DATA_GROWTH` times the first's (+ 1 MiB in
    all, for the allocator's and the file's steps)."""
    after = windows[windows.index(base) :]
    half = len(after) // 2
    written = [
        sum(w.done["release"] + w.done["grant"] for w in part) for part in (after[1 : half + 1], after[half + 1 :])
    ]
    grown = [size(after[half]) - size(base), size(windows[-1]) - size(after[half])]
    per = [g / n if n else 0.0 for g, n in zip(grown, written, strict=True)]
    total = (size(windows[-1]) - size(base)) / sum(written) if sum(written) else 0.0
    growth = (size(windows[-1]) - size(base)) / size(base) if size(base) else 0.0
    return Check(
        f"{name} grows with the data written",
        all(written) and grown[1] <= DATA_GROWTH * per[0] * written[1] + SLACK_BYTES,
        f"{size(base) / 2**20:,.1f} MiB at {base.end:.0f} s, {size(windows[-1]) / 2**20:,.1f} MiB at the end "
        f"({growth:+.0%}): {total:,.0f} bytes per release or grant written (first half {per[0]:,.0f}, "
        f"second half {per[1]:,.0f}; limit {DATA_GROWTH:g}x the first, + 1 MiB in all)",
    )


def checks(soak: Soak, warmup: float) -> list[Check]:
    windows = soak.windows
    members = soak.members
    out: list[Check] = []
    errors = sum((w.errors for w in windows), Counter[str]())
    retried = ", ".join(f"{k} {v}" for k, v in sorted(soak.retried.items()))
    out.append(
        Check(
            "no error",
            not errors,
            (", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0 errors")
            + (f" (sent again after {retried})" if retried else ""),
        )
    )
    third = max(1, len(windows) // 3)
    for kind in ("release", "grant"):
        first, last = pct(merged(windows[:third], kind), 0.99), pct(merged(windows[-third:], kind), 0.99)
        out.append(
            Check(
                f"{kind} p99 stable",
                last <= P99_GROWTH * first + P99_SLACK_MS,
                f"first third {first:,.0f} ms, last third {last:,.0f} ms "
                f"(limit {P99_GROWTH:g}x the first + {P99_SLACK_MS:.0f} ms)",
            )
        )
    base = next((w for w in windows if w.end >= warmup), windows[0])
    for name in soak.services:
        before, after = base.rss_kib[name], windows[-1].rss_kib[name]
        growth = (after - before) / before if before else 0.0
        out.append(
            Check(
                f"{name} resident memory",
                growth < RSS_GROWTH,
                f"{before / 1024:,.0f} MiB at {base.end:.0f} s, {after / 1024:,.0f} MiB at the end: {growth:+.1%} "
                f"(limit {RSS_GROWTH:+.0%})",
            )
        )
    # anvil keeps the whole chain in memory (blocks, receipts, states), and the database keeps
    # every release and grant: both must grow with the data written, no faster
    out.append(grows_with_data("anvil resident memory", windows, base, lambda w: w.rss_kib["anvil"] * 1024))
    out.append(grows_with_data("database", windows, base, lambda w: w.db_bytes))
    # on chain, in the log, and the audit
    chain = members.admin.call("GET", "/v1/chain")
    consent = soak.dev.node.w3.eth.contract(
        address=chain["contracts"]["ConsentLedger"], abi=compile_contracts()["ConsentLedger"].abi
    )
    recorded = {"0x" + bytes(e.args.grantId).hex() for e in consent.events.GrantRecorded.get_logs(from_block=0)}
    missing = [g for g in [*soak.grants, *soak.granted] if g not in recorded]
    out.append(
        Check(
            "every grant answered 2xx is on chain",
            not missing,
            f"{len(soak.grants) + len(soak.granted):,} grants, {len(missing)} missing",
        )
    )
    auditor = members.auditor
    report = auditor.call("POST", "/v1/audit/verify", json={})
    out.append(
        Check(
            "the release log holds exactly the releases answered 2xx",
            report["log_entries"] == len(set(soak.released)) == report["releases"],
            f"{len(set(soak.released)):,} releases answered 2xx, {report['releases']:,} on chain, "
            f"{report['log_entries']:,} log entries",
        )
    )
    out.append(
        Check(
            "audit clean (POST /v1/audit/verify)",
            not report["violations"],
            f"{len(report['violations'])} violations, {report['signatures_checked']:,} signatures checked",
        )
    )
    return out


def table(soak: Soak, group: int) -> str:
    """One row per ``group`` windows: requests, errors, latency, memory, database."""
    names = " / ".join(soak.pids)
    busy = [k for k in soak.pids if soak.pids[k] is not None]  # the load generator's CPU: not of interest
    lines = [
        "| until | releases | grants | reads | errors | p50 ms | p99 ms | releases p99 ms | "
        f"RSS {names} MiB | CPU {' / '.join(busy)} % of a core | database MiB | rows | load average |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    windows = soak.windows
    for i in range(0, len(windows), group):
        part = windows[i : i + group]
        end = part[-1]
        first = windows[i - 1] if i else soak.start
        done = sum((w.done for w in part), Counter[str]())
        rss = " / ".join(f"{end.rss_kib.get(k, 0) / 1024:,.0f}" for k in soak.pids)
        period = end.end - first.end
        cpu = " / ".join(f"{100 * (end.cpu_s.get(k, 0) - first.cpu_s.get(k, 0)) / period:.0f}" for k in busy)
        lines.append(
            f"| {end.end:,.0f} s | {done['release']:,} | {done['grant']:,} | {done['read']:,} | "
            f"{sum(sum(w.errors.values()) for w in part)} | {pct(merged(part), 0.5):,.0f} | "
            f"{pct(merged(part), 0.99):,.0f} | {pct(merged(part, 'release'), 0.99):,.0f} | {rss} | {cpu} | "
            f"{end.db_bytes / 2**20:,.1f} | {end.rows:,} | {end.load} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of load")
    parser.add_argument("--release-rate", type=float, default=25.0, help="sealed releases per second")
    parser.add_argument("--grant-rate", type=float, default=10.0, help="grants per second")
    parser.add_argument("--read-rate", type=float, default=5.0, help="status reads per second")
    parser.add_argument("--subjects", type=int, default=50, help="citizens (one document and one grant each)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds before memory growth is measured (at most a third)"
    )
    parser.add_argument("--connections", type=int, default=128, help="most requests in flight")
    parser.add_argument(
        "--deployment",
        choices=("dev", "split"),
        default="dev",
        help="dev: `qcl dev` (one process, SQLite); split: `qcl worker` beside `qcl serve` on PostgreSQL",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("QCL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="split: a PostgreSQL URL whose server the soak may create a database on",
    )
    parser.add_argument(
        "--output", type=Path, default=BENCHMARKS, help="the file whose soak (or soak-split) section is rewritten"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; write no file")
    parser.add_argument("--note", default="", help="a sentence added to the section (e.g. the machine's load)")
    args = parser.parse_args()
    seconds = args.minutes * 60
    warmup = min(args.warmup, seconds / 3)
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="qcl-soak-"))
    split = args.deployment == "split"
    with dev_deployment(work, subjects=args.subjects, postgres=args.postgres if split else None) as dev:
        soak = Soak(dev, args)
        asyncio.run(soak.run())
        load_after = load_average()
        results = checks(soak, warmup)
        written = soak.rows
    group = max(1, round(60 / args.interval)) if seconds >= 180 else 1
    done = sum((w.done for w in soak.windows), Counter[str]())
    command = (
        f"`.venv/bin/qcl bench soak --minutes {args.minutes:g} --release-rate {args.release_rate:g} "
        f"--grant-rate {args.grant_rate:g} --read-rate {args.read_rate:g} --subjects {args.subjects} "
        f"--interval {args.interval:g}" + (" --deployment split" if split else "") + "`"
    )
    service = (
        "`qcl worker` (release relayer, indexer follower, checkpoints) beside `qcl serve` (one API process) on "
        "PostgreSQL (a database of its own on the local server)"
        if split
        else "`qcl dev` (API, release relayer, indexer follower and checkpoints in one process, SQLite)"
    )
    size = (
        "database = `pg_database_size` (tables, indexes and rows not yet vacuumed)"
        if split
        else "database = pages in use (through the WAL)"
    )
    biggest = ", ".join(f"{t} {n:,}" for t, n in sorted(written.items(), key=lambda kv: -kv[1])[:6])
    body = (
        f"Command: {command} (scripts/bench_soak.py). {service} on an anvil of its own; the load generator (aiohttp, open loop: "
        f"each request sent at its scheduled time) in another process, all on this shared 2-core machine "
        f"(load average {load_before} before, {load_after} after). {args.minutes:g} minutes at "
        f"{args.release_rate:g} sealed releases/s, {args.grant_rate:g} grants/s and {args.read_rate:g} status "
        f"reads/s (the defaults, 25/10/5, are about half the release path's capacity measured in issue 8): "
        f"{done['release']:,} releases, "
        f"{done['grant']:,} grants and {done['read']:,} reads answered 2xx. Memory growth is measured from "
        f"{warmup:.0f} s (after the warm-up) to the end. "
        + (args.note + " " if args.note else "")
        + f"Latency in ms, resident memory (VmRSS) at the end of each row's period, CPU = user + system time "
        f"over the row's period, {size}; {soak.disk_bytes / 2**20:,.1f} MiB on disk at the end; load "
        f"average = the machine's 1-minute load average at the row's end (2 cores, shared). "
        f"Largest tables at the end: {biggest}.\n\n"
        + table(soak, group)
        + "\n\n| check | result | figures |\n|---|---|---|\n"
        + "\n".join(f"| {c.name} | {'pass' if c.ok else '**FAIL**'} | {c.figures} |" for c in results)
    )
    print("\n" + body)
    if not args.no_write:
        title = f"Soak: a steady load for {args.minutes:g} minutes (scripts/bench_soak.py)"
        if split:
            title += ", `qcl worker` + `qcl serve` on PostgreSQL"
        write("soak-split" if split else "soak", title, body, args.output)
    sys.exit(0 if all(c.ok for c in results) else 1)


if __name__ == "__main__":
    main()
