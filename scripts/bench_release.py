"""The release path at city scale, through the real API (`qcl dev` on anvil), with pre-signed bodies.

Usage: .venv/bin/python scripts/bench_release.py [--releases 5000] [--clients 32 128] [--grants 1000]
(prints figures and rewrites the "release" section of BENCHMARKS.md; `make bench` runs it).

What it does, all on this machine:
1. starts anvil and `qcl dev` (API + release relayer + indexer + checkpoints in one process) on free
   ports in a temporary data directory; onboards a provider, a department (CONSUMER with an HPKE key),
   an auditor and ``--subjects`` citizens; registers a resource; the provider issues one document to
   each citizen;
2. grants: each citizen's signed Grant (pre-signed) relayed by POST /v1/grants at each concurrency;
3. releases: the department's signed ReleaseRequests (pre-signed, fresh request ids) sent by
   POST /v1/releases at each concurrency; every answer's sealed document is opened and its
   commitment checked; status reads: GET /v1/releases/{id};
4. the naive pattern in the same run: one web3.py ``transact`` + ``wait_for_transaction_receipt``
   per release (each client thread its own unlocked anvil account);
5. checks itself: POST /v1/audit/verify over the whole chain finds no violation, every grant
   answered 2xx is on chain, and the release log holds exactly the releases answered 2xx;
6. peak resident memory (VmHWM) of the API process and of anvil.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx
from eth_account import Account

from chain_client import compile_contracts, free_port, start_node
from chain_client.ids import RequestIdAllocator
from db.scratch import create_database, drop_database
from qcl_client import QclClient, open_release
from scripts._bench import (
    ROOT,
    cpu_seconds,
    end,
    memory_kib,
    onboard,
    send,
    signed_grant,
    signed_release,
    wait_health,
    wait_log,
    write_section,
)
from scripts._profile import sampled, steps, top_self


@dataclass
class Run:
    name: str
    clients: int
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Requests sent again after a transport error (idempotent ones only), by error.
    retried: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    #: CPU milliseconds per request spent by the API process, anvil and the load generator.
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        failed = sum(self.failed.values())
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items())) or "none"
        if self.retried:
            codes += "; sent again after " + ", ".join(f"{k} {v}" for k, v in sorted(self.retried.items()))
        return (
            f"| {self.name} | {self.clients} | {self.ok + failed:,} | {self.rate:,.1f} | {self.pct(0.5):,.0f} | "
            f"{self.pct(0.99):,.0f} | {failed} ({codes}) | "
            + " / ".join(f"{self.cpu_ms.get(k, 0):.1f}" for k in ("api", "worker", "anvil", "load"))
            + " |"
        )


async def _load(
    name: str, url: str, bodies: list[tuple[str, str, Any]], clients: int, token: str, check: Any = None
) -> tuple[Run, list[Any]]:
    """Send ``bodies`` ((method, path, json)) with ``clients`` in flight; keep the 2xx answers.

    aiohttp with one keep-alive connection per client: it costs the load generator about a third
    of httpx's CPU per request, which on a 2-core machine shared with the API and the node is the
    difference between measuring the API and measuring the load generator."""
    run = Run(name, clients)
    answers: list[Any] = [None] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120.0)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout) as http:

        async def client() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                method, path, body = bodies[i]
                started = time.perf_counter()
                status, payload, error = await send(http, method, path, body, run.retried)
                if error is not None:
                    run.failed[error] = run.failed.get(error, 0) + 1
                if status is None:
                    continue
                run.latencies.append(time.perf_counter() - started)
                if status < 300:
                    run.ok += 1
                    answers[i] = payload
                else:
                    code = f"{status} {(payload or {}).get('code', '?')}"
                    run.failed[code] = run.failed.get(code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        run.seconds = time.perf_counter() - started
    return run, answers


def _peak_mib(pid: int) -> int:
    return memory_kib(pid, "VmHWM") // 1024


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (``qcl serve --workers N`` is a uvicorn parent and N children)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parents.get(p, []))
    return found


def _family_cpu(pid: int | None) -> float:
    """CPU seconds of a process and its descendants (of this process alone when ``pid`` is None)."""
    if pid is None:
        return cpu_seconds(None)
    total = 0.0
    for p in _family(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def _start(deployment: str, api_workers: int, env: dict[str, str], work: Path) -> list[subprocess.Popen[bytes]]:
    """The processes under test, the API last: `qcl dev`, or `qcl worker` then `qcl serve --workers N`."""
    qcl = str(ROOT / ".venv" / "bin" / "qcl")

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        log = work / f"{args[0]}.log"
        return subprocess.Popen([qcl, *args], env=env, cwd=work, stderr=subprocess.STDOUT, stdout=log.open("wb"))

    if deployment == "dev":
        return [spawn("dev")]
    worker = spawn("worker")
    wait_log(work / "worker.log", "worker active", worker)
    return [worker, spawn("serve", "--workers", str(api_workers))]


def main() -> None:  # noqa: C901 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=5000, help="releases per concurrency level")
    parser.add_argument("--grants", type=int, default=1000, help="grants per concurrency level")
    parser.add_argument("--subjects", type=int, default=100, help="citizens (one document each)")
    parser.add_argument("--clients", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--naive", type=int, default=300, help="releases of the naive pattern")
    parser.add_argument(
        "--grant-reads", type=int, default=0, help="also this many grant status reads (GET /v1/grants/{id}) per level"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--profile", type=Path, help="sample the API process with py-spy per phase into this folder")
    parser.add_argument(
        "--deployment",
        choices=("dev", "split"),
        default="dev",
        help="dev: `qcl dev` (one process, SQLite); split: `qcl worker` beside `qcl serve --workers N` on PostgreSQL",
    )
    parser.add_argument("--api-workers", type=int, default=2, help="split: API processes (`qcl serve --workers N`)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("QCL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="split: a PostgreSQL URL whose server the benchmark may create a database on",
    )
    parser.add_argument(
        "--block-time",
        type=int,
        default=0,
        help="seconds between blocks once the members are onboarded (a consortium network's pace, e.g. "
        "Besu QBFT's 1-2 s); 0: anvil mines each transaction at once",
    )
    args = parser.parse_args()

    compile_contracts()
    work = Path(tempfile.mkdtemp(prefix="qcl-bench-"))
    node = start_node("anvil", log_dir=work / "anvil-logs")
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    admin, relayer, releaser, auditor_key = (Account.create() for _ in range(4))
    data_dir = work / "data"
    data_dir.mkdir()
    accounts = {
        n: {"address": a.address, "private_key": a.key.to_0x_hex()}
        for n, a in (("admin", admin), ("relayer", relayer), ("releaser", releaser), ("auditor", auditor_key))
    }
    (data_dir / "accounts.json").write_text(json.dumps(accounts))
    for account in (admin, relayer, releaser):
        node.fund(account.address)
    env = {
        **os.environ,
        "QCL_ENV": "dev",
        "QCL_CHAIN": str(node.url),
        "QCL_API_PORT": str(api_port),
        "QCL_PUBLIC_URL": url,
        "QCL_DATA_DIR": str(data_dir),
        "QCL_CHECKPOINT_INTERVAL": "5",
        "PYTHONPATH": str(ROOT),
    }
    database = None
    if args.deployment == "split":
        database = create_database(args.postgres, "qcl_bench")
        env["QCL_DATABASE_URL"] = database
    procs = _start(args.deployment, args.api_workers, env, work)
    api, worker = procs[-1], (procs[0] if args.deployment == "split" else None)
    rows: list[str] = []
    try:
        wait_health(url, api)
        print(f"{' + '.join(p.args[1] for p in procs)} up at {url}; anvil at {node.url}")
        http = httpx.Client(base_url=url, timeout=120.0)
        members = onboard(http, admin, auditor_key, args.subjects)
        boss, dept, dept_key, auditor, citizens = (
            members.admin,
            members.dept,
            members.dept_key,
            members.auditor,
            members.citizens,
        )
        print(f"{len(citizens)} citizens onboarded with one document each")

        def grant_body(citizen: QclClient) -> dict[str, Any]:
            return signed_grant(citizen, dept.address)

        chain = boss.call("GET", "/v1/chain")
        consent = node.w3.eth.contract(
            address=chain["contracts"]["ConsentLedger"], abi=compile_contracts()["ConsentLedger"].abi
        )
        profiles: list[tuple[str, Path]] = []
        if args.block_time:
            # a block every block_time seconds from here on, whatever arrives (interval mining)
            for method, params in (("evm_setAutomine", [False]), ("evm_setIntervalMining", [args.block_time])):
                answer = node.w3.provider.make_request(method, params)
                if answer.get("error"):
                    raise SystemExit(f"{method}{params}: {answer['error']}")

        pids = {
            "api": api.pid,
            "worker": worker.pid if worker else None,
            "anvil": node.process.pid if node.process else None,
            "load": None,
        }

        def measured(coro: Any) -> Any:
            """Run one load phase (sampled with py-spy when --profile is given), with the CPU time
            each process spent on it: a figure that holds on a busy machine, unlike the rates."""
            before = {k: _family_cpu(p) for k, p in pids.items() if k == "load" or p}
            if not args.profile:
                result = asyncio.run(coro)
            else:
                args.profile.mkdir(parents=True, exist_ok=True)
                out = args.profile / f"phase-{len(profiles) + 1}.txt"
                with sampled(api.pid, out, subprocesses=args.deployment == "split"):
                    result = asyncio.run(coro)
                profiles.append((result[0].name + f" @{result[0].clients}", out))
            run = result[0]
            done = max(1, run.ok + sum(run.failed.values()))
            run.cpu_ms = {k: (_family_cpu(pids[k]) - v) * 1000 / done for k, v in before.items()}
            return result

        messages: dict[str, dict[str, Any]] = {}
        grant_runs: list[Run] = []
        for clients in args.clients:
            bodies = [("POST", "/v1/grants", grant_body(citizens[i % len(citizens)])) for i in range(args.grants)]
            run, answers = measured(_load("grants (POST /v1/grants)", url, bodies, clients, dept.token or ""))
            for body, answer in zip(bodies, answers, strict=True):
                if answer:
                    messages[answer["grant_id"]] = body[2]["message"]
            grant_runs.append(run)
            print(run.row())
            if args.grant_reads and messages:
                recorded = list(messages)
                reads = [("GET", f"/v1/grants/{recorded[i % len(recorded)]}", None) for i in range(args.grant_reads)]
                run, _ = measured(_load("grant status (GET /v1/grants/{id})", url, reads, clients, dept.token or ""))
                grant_runs.append(run)
                print(run.row())
        # one grant per citizen is enough to release under (unlimited uses)
        by_subject: dict[str, str] = {}
        for grant_id, message in messages.items():
            by_subject.setdefault(message["subject"], grant_id)
        grants = list(by_subject.values())
        allocator = RequestIdAllocator()

        def release_body(grant_id: str) -> dict[str, Any]:
            return signed_release(dept, allocator, grant_id)

        release_runs: list[Run] = []
        read_runs: list[Run] = []
        released: list[str] = []
        for clients in args.clients:
            bodies = [("POST", "/v1/releases", release_body(grants[i % len(grants)])) for i in range(args.releases)]
            run, answers = measured(
                _load("sealed releases (POST /v1/releases)", url, bodies, clients, dept.token or "")
            )
            release_runs.append(run)
            print(run.row())
            for (_m, _p, body), answer in zip(bodies, answers, strict=True):
                if answer:
                    opened = open_release(
                        answer,
                        dept_key,
                        grant_id=bytes.fromhex(body["message"]["grantId"][2:]),
                        request_id=bytes.fromhex(body["message"]["requestId"][2:]),
                    )
                    assert opened.content.startswith(b"record of citizen")
                    released.append(answer["release_id"])
            reads = [("GET", f"/v1/releases/{rid}", None) for rid in released[-min(len(released), 2000) :]]
            run, _ = measured(_load("status reads (GET /v1/releases/{id})", url, reads, clients, dept.token or ""))
            read_runs.append(run)
            print(run.row())

        before = {k: _family_cpu(p) for k, p in pids.items() if k == "load" or p}
        naive = _naive(
            node.w3, consent, [(g, messages[g]) for g in grants], args.naive, min(args.clients), release_body
        )
        naive.cpu_ms = {k: (_family_cpu(pids[k]) - v) * 1000 / max(1, args.naive) for k, v in before.items()}
        naive.cpu_ms["api"] = 0.0
        print(naive.row())
        api_rss = max(_peak_mib(p) for p in _family(api.pid))
        worker_rss = _peak_mib(worker.pid) if worker else 0
        anvil_rss = _peak_mib(node.process.pid) if node.process else 0

        # ---- checks ----------------------------------------------------------------------------
        auditor.token = auditor.token or (auditor.login() and auditor.token)
        report = auditor.call("POST", "/v1/audit/verify", json={})
        missing = [g for g in messages if int(consent.functions.grantState(bytes.fromhex(g[2:])).call()[0], 16) == 0]
        log_size = len(
            auditor.call("GET", f"/v1/subjects/{citizens[0].address}/access-log", params={"limit": 500})["items"]
        )
        checks = (
            f"After the load: `POST /v1/audit/verify` over the whole chain: {report['releases']:,} releases, "
            f"{report['log_entries']:,} log entries, {report['signatures_checked']:,} signatures checked, "
            f"**{len(report['violations'])} violations** (the naive pattern's releases are on chain without a "
            f"log entry by design: they bypass the vault, so they are the only `receipt_without_release` expected: "
            f"{sum(v['code'] == 'receipt_without_release' for v in report['violations'])}). "
            f"Grants answered 2xx: {len(messages):,}, of which missing on chain: {len(missing)}. "
            f"Releases answered 2xx: {len(released):,}. "
            f"Access-log entries of the first citizen: {log_size}."
        )
        print(checks)
        rows = [r.row() for r in (*grant_runs, *release_runs, *read_runs, naive)]
        blocks_args = f" --block-time {args.block_time}" if args.block_time else ""
        blocks_text = (
            f", a block every {args.block_time} s once the members are onboarded (anvil's interval mining)"
            if args.block_time
            else ", each transaction mined at once"
        )
        if args.deployment == "split":
            deployment_args = f" --deployment split --api-workers {args.api_workers}"
            deployment_text = (
                f"`qcl worker` (release relayer, indexer, checkpoints, clocks) beside `qcl serve --workers "
                f"{args.api_workers}` (API processes) on PostgreSQL"
            )
        else:
            deployment_args = ""
            deployment_text = "`qcl dev` (API, release relayer, indexer and checkpoints in one process, SQLite)"
        best = max((r.rate for r in release_runs), default=0.0)
        ratio = best / naive.rate if naive.rate else 0.0
        body = (
            f"Command: `.venv/bin/python scripts/bench_release.py --releases {args.releases} --grants {args.grants} "
            f"--subjects {args.subjects} --clients {' '.join(map(str, args.clients))}{deployment_args}{blocks_args}` — "
            f"{deployment_text} on anvil{blocks_text}; the load generator (aiohttp, asyncio, pre-signed bodies) in another "
            f"process, all on this 2-core machine. Latency in ms.\n\n"
            "| operation | clients | requests | per second | p50 | p99 | failed (codes) | CPU ms per request: API / worker / anvil / load generator |\n"
            "|---|---:|---:|---:|---:|---:|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Best sealed releases/s against the naive pattern in the same run: {ratio:.1f}x. "
            f"Peak resident memory: API process {api_rss} MiB, worker {worker_rss} MiB, anvil {anvil_rss} MiB.\n\n"
            f"{checks}\n\n"
            "Targets (issue 8): >= 400 grants/s and >= 300 sealed releases/s at 128 clients, p99 <= 1 s for "
            "releases, >= 10x the naive pattern, zero failed valid requests."
        )
        for label, raw in profiles:
            if raw.exists():
                print(f"\n{label}: py-spy samples of the API process, innermost frames ({raw})")
                for frame, n in top_self(raw, 25):
                    print(f"  {n:6d}  {frame}")
        profile_text = ""
        if profiles:
            profile_text = (
                "\n\nWhere the API process's CPU went (py-spy, the thread holding the GIL sampled at 100 Hz "
                "during each phase; a step's share includes the steps it calls):\n\n"
                "| step | " + " | ".join(label for label, _ in profiles) + " |\n"
                "|---|" + "---:|" * len(profiles) + "\n"
            )
            shares = [steps(raw) for _, raw in profiles]
            for i, (label, _) in enumerate(shares[0][1]):
                profile_text += f"| {label} | " + " | ".join(f"{s[1][i][1]:.0f}%" for s in shares) + " |\n"
            profile_text += "| samples | " + " | ".join(f"{s[0]:,}" for s in shares) + " |"
            profile_text += (
                "\n\nReading it: the CPU columns are each process's cost per request (py-spy adds its own sampling "
                "cost to the profiled runs). All the processes share this machine's two cores, so a release's "
                "total CPU (API + worker + anvil + load generator) bounds the rate: about 6 ms a release without "
                "the profiler, hence ~300 releases/s at best with both cores busy and nothing else running. "
                "Where a release's API time goes now: the HTTP and ASGI framework (a fifth to a third), the "
                "admission checks (the grantee's EIP-712 signature, the current document's id), the group commit "
                "of intents, sealing the document; in `qcl dev` also the relayer's grouped transaction (ABI "
                "encoding, receipt decoding, the log) and the indexer's event fan-out, which `qcl worker` runs "
                "elsewhere in the split deployment. What would close the gap to 300/s: more cores (the split "
                "deployment puts the worker and each API process on their own) and the framework's per-request "
                "cost. The relayers are pipelined (up to `QCL_PIPELINE_DEPTH` grouped transactions in flight), so "
                "on a network with 1-2 s blocks one relayer account is not bound to one group (200 releases) a "
                "block: see the `--block-time` section."
            )
        body += profile_text
        if not args.no_write:
            if args.block_time:
                key, title = (
                    "release-blocks",
                    f"The release path with a block every {args.block_time} s (a consortium network's pace)",
                )
            elif args.deployment == "split":
                key, title = (
                    f"release-split-{args.api_workers}",
                    f"The release path, `qcl worker` + `qcl serve --workers {args.api_workers}` on PostgreSQL",
                )
            else:
                key, title = "release", "The release path through the API (scripts/bench_release.py)"
            write_section(key, title, body)
        print(body)
    finally:
        for proc in reversed(procs):
            end(proc)
        node.stop()
        if database:
            drop_database(args.postgres, database)


def _naive(
    w3: Any, consent: Any, grants: list[tuple[str, dict[str, Any]]], count: int, clients: int, release_body: Any
) -> Run:
    """One web3.py transact + wait per release (anvil's unlocked accounts), ``clients`` threads."""
    run = Run("naive: web3 transact + wait per release", clients)
    senders = w3.eth.accounts[:clients]
    lock = threading.Lock()
    counter = iter(range(count))

    def worker(sender: str) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            grant_id, g = grants[i % len(grants)]
            body = release_body(grant_id)
            m = body["message"]
            grant = (
                g["subject"],
                g["grantee"],
                [bytes.fromhex(r[2:]) for r in g["resources"]],
                bytes.fromhex(g["purpose"][2:]),
                int(g["validFrom"]),
                int(g["validUntil"]),
                int(g["maxUses"]),
                int(g["nonce"]),
                int(g["deadline"]),
            )
            started = time.perf_counter()
            try:
                tx = consent.functions.recordRelease(
                    grant,
                    bytes.fromhex(m["resource"][2:]),
                    bytes.fromhex(m["requestId"][2:]),
                    int(m["deadline"]),
                    bytes.fromhex(body["signature"][2:]),
                ).transact({"from": sender})
                ok = w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
                error = "reverted"
            except Exception as exc:  # noqa: BLE001 - counted as a failure of the naive pattern
                ok, error = False, type(exc).__name__
            with lock:
                run.latencies.append(time.perf_counter() - started)
                run.ok += ok
                if not ok:
                    run.failed[error] = run.failed.get(error, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.seconds = time.perf_counter() - started
    return run


if __name__ == "__main__":
    main()
