"""Shared helpers of the benchmark scripts: a `qcl dev` deployment on an anvil of its own with its
members, pre-signed request bodies, one request sent with the SDK's retry rule, process figures
from /proc, and writing one section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account

from chain_client import Node, compile_contracts, start_node
from chain_client.ids import RequestIdAllocator, new_nonce, purpose_id, resource_id
from db.scratch import create_database, drop_database
from qcl_client import QclClient
from tests.faults._procs import dev_env, end, fund_accounts, spawn

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nFigures measured on the project's machine by the scripts named in each section.\n"
RESOURCE = "social_insurance"
PURPOSE = "benefit-review"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or "?"
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def write_section(key: str, title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section marked ``key`` in ``path`` (BENCHMARKS.md)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- {key}:start -->\n## {title}\n\nMeasured {stamp} on {machine()}.\n\n{body.strip()}\n<!-- {key}:end -->\n"
    )
    text = path.read_text() if path.is_file() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(key)}:start -->.*?<!-- {re.escape(key)}:end -->\n", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ---- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (this one when ``pid`` is None)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int | None, field: str = "VmRSS") -> int:
    """A memory figure of /proc/<pid>/status in KiB (``VmRSS``: resident now; ``VmHWM``: peak);
    this process when ``pid`` is None."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---- the deployment ----------------------------------------------------------------------------


@dataclass
class Members:
    """The members a benchmark runs with: the deployment's ADMIN, a provider, one department
    (CONSUMER with an HPKE key), the deployment's first AUDITOR, and citizens with one document each."""

    admin: QclClient
    provider: QclClient
    dept: QclClient
    dept_key: x25519.X25519PrivateKey
    auditor: QclClient
    citizens: list[QclClient]


@dataclass
class Dev:
    """The service under test on an anvil of its own, and its members: `qcl dev` (API, release
    relayer, indexer follower, checkpoints in one process, SQLite), or ``split``: `qcl worker`
    beside `qcl serve` (one API process) on PostgreSQL."""

    node: Node
    api: subprocess.Popen[bytes]
    url: str
    data: Path
    http: httpx.Client
    members: Members
    worker: subprocess.Popen[bytes] | None = None
    database: str | None = None  # the PostgreSQL URL (split); None: ``data/vault.db``

    @property
    def anvil_pid(self) -> int | None:
        return self.node.process.pid if self.node.process else None


def wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"qcl dev exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("qcl dev did not answer /health")


def onboard(http: httpx.Client, admin: Any, auditor: Any, subjects: int) -> Members:
    """Onboard the members of a benchmark (``admin`` and ``auditor``: the deployment's accounts)."""
    boss = QclClient(http=http, account=admin)
    boss.login()
    provider, dept = (QclClient(http=http, account=Account.create()) for _ in range(2))
    auditor_client = QclClient(http=http, account=auditor)  # the first AUDITOR, named by the deployment
    dept_key = x25519.X25519PrivateKey.generate()
    boss.onboard(provider.address, ["PROVIDER"], "Jinan Social Insurance Bureau", org_code="BENCH-P")
    boss.onboard(
        dept.address,
        ["CONSUMER"],
        "Housing Provident Fund Center",
        org_code="BENCH-C",
        hpke_public_key=dept_key.public_key().public_bytes_raw(),
    )
    boss.register_resource(RESOURCE, "Social insurance record", provider.address, 2)
    for client in (provider, dept, auditor_client):
        client.login()
    citizens = [QclClient(http=http, account=Account.create()) for _ in range(subjects)]
    for i, citizen in enumerate(citizens):
        boss.onboard(citizen.address, ["SUBJECT"], f"Citizen {i}")
        provider.store_document(citizen.address, RESOURCE, f"record of citizen {i}".encode() * 8)
    domain = dept.domain()
    for citizen in citizens:
        citizen._domain = domain
    return Members(boss, provider, dept, dept_key, auditor_client, citizens)


@contextmanager
def dev_deployment(
    work: Path, *, subjects: int, checkpoint_interval: float = 5, postgres: str | None = None
) -> Iterator[Dev]:
    """Start anvil and `qcl dev` on free ports in ``work`` (the deployment's accounts in its data
    directory, the release relayer with an account of its own), onboard the members; stop both after.

    With ``postgres`` (a URL whose server a database may be created on): a new database there, and
    `qcl worker` then `qcl serve` (one API process) instead of `qcl dev`; the database is dropped
    after."""
    compile_contracts()
    node = start_node("anvil", log_dir=work / "anvil-logs")
    data = work / "data"
    accounts = fund_accounts(node, data)
    database = create_database(postgres, "qcl_soak") if postgres else None
    env = dev_env(
        data,
        str(node.url),
        database=database,
        QCL_CHECKPOINT_INTERVAL=str(checkpoint_interval),
        QCL_INDEX_INTERVAL="2",
    )
    url = env["QCL_PUBLIC_URL"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        worker = None
        if database:
            worker = spawn(["worker"], env, work / "worker.log")
            procs.append(worker)
            wait_log(work / "worker.log", "worker active", worker)
        api = spawn(["serve"] if database else ["dev"], env, work / "api.log")
        procs.append(api)
        wait_health(url, api)
        what = f"qcl worker (pid {worker.pid}) + qcl serve" if worker else "qcl dev"
        print(f"{what} up at {url} (pid {api.pid}); anvil at {node.url}", flush=True)
        with httpx.Client(base_url=url, timeout=120.0) as http:
            members = onboard(http, accounts["admin"], accounts["auditor"], subjects)
            print(f"{subjects} citizens onboarded with one document each", flush=True)
            yield Dev(node, api, url, data, http, members, worker=worker, database=database)
    finally:
        for proc in reversed(procs):
            end(proc)
        node.stop()
        if postgres and database:
            drop_database(postgres, database)


def wait_log(log: Path, line: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Wait until ``log`` holds ``line`` (the process must keep running)."""
    deadline = time.monotonic() + timeout
    while line not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"qcl {log.stem} did not start: {log.read_text()[-2000:] if log.exists() else ''}")
        time.sleep(0.25)


# ---- requests ----------------------------------------------------------------------------------


def signed_grant(citizen: QclClient, grantee: str, *, valid_for: int = 86400) -> dict[str, Any]:
    """A citizen's signed Grant of :data:`RESOURCE` to ``grantee``, valid now for ``valid_for`` seconds."""
    now = int(time.time())
    message = {
        "subject": citizen.address,
        "grantee": grantee,
        "resources": [resource_id(RESOURCE)],
        "purpose": purpose_id(PURPOSE),
        "validFrom": now - 60,
        "validUntil": now + valid_for,
        "maxUses": 0,
        "nonce": new_nonce(),
        "deadline": now + 3600,
    }
    return citizen._signed("Grant", message)


def signed_release(dept: QclClient, allocator: RequestIdAllocator, grant_id: str) -> dict[str, Any]:
    """The department's signed ReleaseRequest of :data:`RESOURCE` under ``grant_id``, a fresh request id."""
    message = {
        "grantId": bytes.fromhex(grant_id[2:]),
        "resource": resource_id(RESOURCE),
        "requestId": allocator.next(),
        "deadline": int(time.time()) + 3600,
    }
    return dept._signed("ReleaseRequest", message)


async def send(
    http: aiohttp.ClientSession, method: str, path: str, body: Any, retried: dict[str, int]
) -> tuple[int | None, Any, str | None]:
    """One request: ``(status, payload, None)``, or ``(None, None, transport error)``.

    A release request and a read may be sent again as they are (SPEC §9.7), as the SDK does
    (QclClient.call_idempotent) when a keep-alive connection was closed under it: up to 3 times,
    each counted in ``retried`` by error."""
    idempotent = method == "GET" or path == "/v1/releases"
    for attempt in range(3 if idempotent else 1):
        try:
            async with http.request(method, path, json=body) as response:
                return response.status, await response.json(content_type=None), None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            error = type(exc).__name__
            if attempt < (2 if idempotent else 0):
                retried[error] = retried.get(error, 0) + 1
                continue
            return None, None, error
    raise AssertionError("unreachable")
