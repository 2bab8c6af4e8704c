"""The release relayer's process killed with SIGKILL at random points of its flushes, again and
again, while releases flow (issue 16): 5 times here, QCL_KILLS=20 for the issue's 20, and
`qcl bench faults --only relayer-killed` records a 20-kill run in BENCHMARKS.md. Afterwards: no
release without a receipt (every one answered 201 is on chain), no receipt without a log entry
(every release on chain is in the log, once), retries by request id return the original release,
and no nonce is left stuck."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from chain_client import CompilationResult, start_node
from db.models import RelayerTransaction, ReleaseIntent, ReleaseLogRow
from tests.conftest import deploy_fresh
from tests.faults._live import LiveApi, Load

KILLS = int(os.environ.get("QCL_KILLS", "5"))
CHILD = str(Path(__file__).with_name("_relayer_child.py"))


def kill_relayer_repeatedly(compiled: CompilationResult, tmp_path: Path, kills: int = KILLS, seed: int = 16) -> dict:  # type: ignore[type-arg]
    """The drill (module docstring); asserts its invariants and returns its figures."""
    node = start_node("anvil", log_dir=tmp_path / "logs")
    # the API records nothing itself (as `qcl serve`): requests wait on the database for the worker
    live = LiveApi(deploy_fresh(node, compiled), tmp_path / "api", citizens=2, relayer=False, release_timeout=15.0)
    spec = json.dumps(
        {
            "url": node.url,
            "deployment": live.deployed.ledger.deployment.to_json(),
            "operator": live.deployed.admin.key.to_0x_hex(),
            "key": live.releaser.key.to_0x_hex(),
            "db": live.store.url,
        }
    )
    rng = random.Random(seed)

    def spawn() -> subprocess.Popen[str]:
        child = subprocess.Popen([sys.executable, CHILD, spec], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        return child

    load = Load(live, clients=8)
    child = None
    try:
        load.start()
        started = time.monotonic()
        for _ in range(kills):
            child = spawn()
            time.sleep(rng.uniform(0.3, 2.0))  # somewhere in a flush: signed, stored, sent or applied
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        child = spawn()  # the last one stays: it settles what the others left
        back = time.monotonic()
        time.sleep(2.0)
        load.stop()
        deadline = time.monotonic() + 60
        while live.unsettled():
            assert time.monotonic() < deadline, "intents left pending"
            time.sleep(0.25)
        settled_in = time.monotonic() - back

        ledger = live.deployed.ledger
        on_chain = [
            ("0x" + bytes(e.args.requestId).hex(), e.transactionHash.to_0x_hex())
            for e in ledger.events("ReleaseRecorded", from_block=0)
        ]
        with live.store.session() as s:
            logged = s.execute(select(ReleaseLogRow.release_id, ReleaseLogRow.tx_hash)).all()
            intents = {r.request_id: r for r in s.scalars(select(ReleaseIntent)).all()}
            unsettled_txs = s.scalars(select(RelayerTransaction).where(RelayerTransaction.status == "sent")).all()
        # no receipt without a log entry, and each once
        assert len(logged) == len({r for r, _ in logged}) == len(on_chain), (len(logged), len(on_chain))
        assert {intents[r].id for r, _ in on_chain} == {r for r, _ in logged}
        # no release without a receipt: every 201 is on chain and in the log
        released = [a for a in load.answers if a.kind == "release" and a.status == 201]
        assert released, load.counts()
        chain_ids = {r for r, _ in on_chain}
        assert all(a.body["message"]["requestId"] in chain_ids for a in released)
        codes = {(a.status, a.code) for a in load.answers}
        assert codes <= {(201, None), (200, None), (503, "release_pending"), (503, "chain_unavailable")}, codes
        # retries by request id return the original release
        for a in released[:5]:
            again = live.http.post("/v1/releases", json=a.body, headers={"Authorization": f"Bearer {live.dept.token}"})
            assert again.status_code == 200 and again.json()["release_id"] == a.answer["release_id"]
        # no nonce left stuck: nothing waits in the pool, nothing stored as in flight
        address = live.releaser.address
        assert node.w3.eth.get_transaction_count(address, "pending") == node.w3.eth.get_transaction_count(address)
        assert unsettled_txs == []
        failed: dict[str, int] = {}
        for a in load.answers:
            if a.status not in (200, 201):
                failed[f"{a.status} {a.code}"] = failed.get(f"{a.status} {a.code}", 0) + 1
        return {
            "kills": kills,
            "requests": len(load.answers),
            "failed": failed,
            "released": len(released),
            "on_chain": len(on_chain),
            "seconds": time.monotonic() - started,
            "settled_in": settled_in,
        }
    finally:
        load.stop()
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(10)
        live.close()
        node.stop()


def test_relayer_process_killed_mid_flush(compiled: CompilationResult, tmp_path: Path) -> None:
    figures = kill_relayer_repeatedly(compiled, tmp_path, KILLS, int(os.environ.get("QCL_KILL_SEED", "16")))
    assert figures["released"] > 0
