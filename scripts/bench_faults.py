"""Faults injected under load, and what they cost (issue 16): writes the RELIABILITY section of
BENCHMARKS.md (`qcl bench faults`).

Each scenario runs `qcl dev`'s API process (release relayer, indexer follower; its own release
account) on an anvil of its own, under ``--clients`` concurrent clients (one in four a citizen
signing grants, the others a department asking for releases) for ``--seconds`` seconds, injects one
fault, and then counts: requests made, requests failed (by code), data lost (a grant or release
answered 2xx that is not on chain, or a release answered 2xx without its log entry: must be 0),
and the time to recover (from the fault to the first release answered 201 that was sent after it).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chain_client import compile_contracts, connect, start_node  # noqa: E402
from chain_client.nodes import Node  # noqa: E402
from qcl_client import QclClient  # noqa: E402
from scripts._bench import BENCHMARKS, write_section  # noqa: E402
from tests.conftest import deploy_fresh  # noqa: E402
from tests.faults._live import LiveApi, Load  # noqa: E402
from tests.faults.rpcproxy import RpcProxy  # noqa: E402


@dataclass
class Outcome:
    name: str
    requests: int
    failed: Counter[str]
    lost: int
    recovered_in: float | None
    note: str
    audit: str = "—"

    def row(self) -> str:
        failed = ", ".join(f"{n} {code}" for code, n in sorted(self.failed.items())) or "0"
        recovered = "—" if self.recovered_in is None else f"{self.recovered_in:.1f} s"
        return (
            f"| {self.name} | {self.requests:,} | {failed} | {self.lost} | {recovered} | {self.audit} | {self.note} |"
        )


def _audit(live: LiveApi) -> str:
    """`POST /v1/audit/verify` over the whole chain, by the deployment's first AUDITOR."""
    auditor = QclClient(http=live.http, account=live.deployed.auditor)
    auditor.login()
    report = auditor.call("POST", "/v1/audit/verify", json={})
    codes = Counter(v["code"] for v in report["violations"])
    verdict = "clean" if not codes else ", ".join(f"{n} {code}" for code, n in sorted(codes.items()))
    moved = len(report.get("relocated", []))
    return verdict + (f" ({moved} relocated)" if moved else "")


def _lost(live: LiveApi, load: Load) -> int:
    ledger = live.deployed.ledger
    grants = {"0x" + bytes(e.args.grantId).hex() for e in ledger.events("GrantRecorded", from_block=0)}
    releases = {"0x" + bytes(e.args.requestId).hex() for e in ledger.events("ReleaseRecorded", from_block=0)}
    logged = live.log_ids()
    lost = 0
    for a in load.answers:
        if a.status not in (200, 201):
            continue
        if a.kind == "grant":
            lost += a.answer["grant_id"] not in grants
        else:
            lost += a.body["message"]["requestId"] not in releases or a.answer["release_id"] not in logged
    return lost


def _settle(live: LiveApi, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not live.unsettled() and not live.vault.relayer.chain_behind():
                return
        except Exception:  # noqa: BLE001 - the chain may still be coming back
            pass
        time.sleep(0.25)


def scenario(
    name: str,
    *,
    seconds: float,
    clients: int,
    fault_at: float,
    inject: Callable[[Node, LiveApi, RpcProxy | None], str],
    proxied: bool = False,
    persistent: bool = False,
) -> Outcome:
    compiled = compile_contracts()
    tmp = Path(tempfile.mkdtemp(prefix="qcl-faults-"))
    state = {"state_path": tmp / "anvil-state.json", "state_interval": 1} if persistent else {}
    node = start_node("anvil", log_dir=tmp / "logs", **state)  # type: ignore[arg-type]
    node.supervise(interval=0.2)
    proxy = RpcProxy(str(node.url)) if proxied else None
    chain = connect(proxy.url) if proxy is not None else node
    live = LiveApi(deploy_fresh(chain, compiled), tmp / "api", citizens=max(1, clients // 4))
    try:
        time.sleep(1.5)
        load = Load(live, clients=clients)
        load.start()
        time.sleep(fault_at)
        fault = time.monotonic() - load.started
        note = inject(node, live, proxy)
        time.sleep(max(0.0, seconds - (time.monotonic() - load.started)))
        load.stop()
        _settle(live)
        after = [a.at for a in load.answers if a.kind == "release" and a.status == 201 and a.at > fault + 0.5]
        while not after and time.monotonic() - load.started < fault + 120:  # the load ended first: probe
            body = live.dept.release_request(live.grants[0], "id_card")
            headers = {"Authorization": f"Bearer {live.dept.token}"}
            if live.http.post("/v1/releases", json=body, headers=headers).status_code == 201:
                after = [time.monotonic() - load.started]
            else:
                time.sleep(0.2)
        failed = Counter(f"{a.status} {a.code}" for a in load.answers if a.status not in (200, 201))
        recovery = live.vault.relayer.last_recovery
        if recovery is not None and recovery.lost_transactions:
            note += f"; {len(recovery.lost_transactions)} lost transactions sent again, {len(recovery.flagged)} flagged"
        recovered_in = (min(after) - fault) if after else None
        lost, waited = _lost(live, load), time.monotonic()
        while lost and time.monotonic() - waited < 60:  # restoring lost blocks takes a few rounds of 3 s
            time.sleep(0.5)
            lost = _lost(live, load)
        if time.monotonic() - waited > 1:
            note += f"; everything answered 2xx on chain {time.monotonic() - waited:.0f} s after the load settled"
        return Outcome(name, len(load.answers), failed, lost, recovered_in, note, _audit(live))
    finally:
        live.close()
        if proxy is not None:
            proxy.close()
        node.stop()


def _section(text: str) -> str:
    match = re.search(r"<!-- reliability:start -->(.*?)<!-- reliability:end -->", text, re.S)
    return match.group(1) if match else ""


def kill_anvil(node: Node, _live: LiveApi, _proxy: RpcProxy | None) -> str:
    head = node.w3.eth.block_number
    assert node.process is not None
    os.kill(node.process.pid, signal.SIGKILL)
    while node.restarts == 0:
        time.sleep(0.05)
    return f"head {head} before, {node.w3.eth.block_number} after the restart"


def revert_blocks(node: Node, _live: LiveApi, _proxy: RpcProxy | None) -> str:
    w3 = node.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    time.sleep(2.0)
    head = w3.eth.block_number
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    return f"{head - w3.eth.block_number} blocks (2 s of load) undone"


def lose_transactions(_node: Node, _live: LiveApi, proxy: RpcProxy | None) -> str:
    assert proxy is not None
    proxy.drop_transactions = 5
    proxy.fail["eth_sendRawTransaction"] = 5
    return "5 transactions accepted then lost, 5 sends failed with an internal error"


def slow_node(_node: Node, _live: LiveApi, proxy: RpcProxy | None) -> str:
    assert proxy is not None
    proxy.delay = 2.0

    def later() -> None:
        time.sleep(5.0)
        proxy.delay = 0.0

    threading.Thread(target=later, daemon=True).start()
    return "2 s per JSON-RPC call for 5 s"


def lock_database(_node: Node, live: LiveApi, _proxy: RpcProxy | None) -> str:
    holder = sqlite3.connect(
        live.store.url.removeprefix("sqlite:///"), timeout=10, isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN EXCLUSIVE")

    def later() -> None:
        time.sleep(3.0)
        holder.execute("ROLLBACK")
        holder.close()

    threading.Thread(target=later, daemon=True).start()
    return "SQLite file locked by another process for 3 s"


def reorg_blocks(node: Node, _live: LiveApi, _proxy: RpcProxy | None) -> str:
    w3 = node.w3
    head = w3.eth.block_number
    mined = sum(len(w3.eth.get_block(n)["transactions"]) for n in range(max(1, head - 2), head + 1))
    answer = w3.provider.make_request("anvil_reorg", [3, []])  # type: ignore[arg-type]
    if "error" in answer:
        raise SystemExit(f"anvil_reorg failed: {answer['error']}")
    return f"the last 3 blocks (about {mined} transactions) replaced by empty ones; the head as high as before"


SCENARIOS = {
    "anvil-killed": ("anvil SIGKILLed, restarted from its state file", kill_anvil, {"persistent": True}),
    "blocks-lost": ("chain came back 2 s behind (evm_revert)", revert_blocks, {}),
    "reorg": ("reorg of the last 3 blocks (anvil_reorg)", reorg_blocks, {}),
    "lost-tx": ("node loses and refuses transactions", lose_transactions, {"proxied": True}),
    "slow-node": ("slow node (2 s per call)", slow_node, {"proxied": True}),
    "db-locked": ("database locked", lock_database, {}),
}


def relayer_killed(kills: int) -> Outcome:
    from tests.faults.test_worker_killed import kill_relayer_repeatedly

    figures = kill_relayer_repeatedly(compile_contracts(), Path(tempfile.mkdtemp(prefix="qcl-kills-")), kills)
    return Outcome(
        f"release relayer process SIGKILLed mid-flush ({kills}×)",  # noqa: RUF001
        figures["requests"],
        Counter(figures["failed"]),
        0,  # kill_relayer_repeatedly asserts every invariant (it raises otherwise)
        figures["settled_in"],
        f"{figures['released']} releases answered 201, {figures['on_chain']} on chain = log entries; "
        "retries return the original release; no nonce stuck (time to recover: last restart to all settled)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of load per scenario")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--fault-at", type=float, default=4.0, help="seconds into the load")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the relayer process (relayer-killed)")
    parser.add_argument(
        "--only", nargs="+", choices=[*sorted(SCENARIOS), "relayer-killed"], help="run only these scenarios"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    outcomes = []
    for key in args.only or [*SCENARIOS, "relayer-killed"]:
        if key == "relayer-killed":
            outcomes.append(relayer_killed(args.kills))
            print(outcomes[-1].row(), flush=True)
            continue
        title, inject, options = SCENARIOS[key]
        outcome = scenario(
            title, seconds=args.seconds, clients=args.clients, fault_at=args.fault_at, inject=inject, **options
        )
        print(outcome.row(), flush=True)
        outcomes.append(outcome)
    body = (
        f"Command: `.venv/bin/qcl bench faults --seconds {args.seconds:g} --clients {args.clients}` "
        f"(scripts/bench_faults.py; `--only <scenario>` re-measures one row and keeps the others). Each scenario: the API process of `qcl dev` (release relayer with its own "
        f"account, indexer follower) on an anvil of its own, {args.clients} clients (one in four signing grants, "
        f"the others asking for releases) for {args.seconds:g} s, the fault injected {args.fault_at:g} s in. "
        "Data lost = grants or releases answered 2xx that are not on chain afterwards (given up to 60 s once "
        "the load settled), or releases answered 2xx without their log entry (must be 0). Time to recover = from the fault to the first release answered 201 "
        "that was sent after it (failed requests are answered 503 and may be sent again: the same signed "
        "request returns its release). Audit afterwards = `POST /v1/audit/verify` over the whole chain once "
        "everything settled (violations by code; releases recorded again in another block are listed as "
        "relocated, not violations).\n\n"
        "| fault | requests | failed (codes) | data lost | time to recover | audit afterwards | notes |\n"
        "|---|---:|---|---:|---:|---|---|\n" + "\n".join(o.row() for o in outcomes)
    )
    rows = [o.row() for o in outcomes]
    if args.only and BENCHMARKS.is_file():  # keep the rows of the scenarios not run this time
        names = {o.name for o in outcomes}
        kept = re.findall(r"^\| (.+?) \| [\d,]+ \|.*$", _section(BENCHMARKS.read_text()), re.M)
        rows = [
            line
            for line in _section(BENCHMARKS.read_text()).splitlines()
            if line.startswith("| ") and line.split(" | ")[0][2:] in set(kept) - names
        ] + rows
    body = (
        body.split("| fault |")[0]
        + "| fault | requests | failed (codes) | data lost | time to recover | audit afterwards | notes |\n"
        + "|---|---:|---|---:|---:|---|---|\n"
        + "\n".join(rows)
    )
    if not args.no_write:
        write_section("reliability", "RELIABILITY: faults under load (scripts/bench_faults.py)", body)
    print(body)
    if any(o.lost for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
