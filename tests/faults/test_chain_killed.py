"""The chain node killed mid-load (issue 16): anvil SIGKILLed while 16 clients send grants and
releases, started again by its supervisor from the state file it writes every second.

While it is down the API answers 503 and releases nothing; afterwards everything recovers by itself
within seconds: the relayers find the nonce gap (their local nonces are ahead of a node that came
back behind) and fill it from the lowest unmined nonce, and the release transactions the chain lost
with its last blocks are sent again byte for byte (vault/reconcile.py). Every release answered 201
is then on chain and in the log, the same signed request returns the same release, and nothing
is left pending."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from chain_client import CompilationResult, start_node
from tests.conftest import deploy_fresh
from tests.faults._live import LiveApi, Load

#: Seconds of load, and when in it the node is killed.
DURATION, KILL_AT = 14.0, 4.0
#: Seconds the service may take to answer a new release after the node is back.
RECOVERY_LIMIT = 20.0


def _recorded_request_ids(live: LiveApi) -> set[str]:
    ledger = live.deployed.ledger
    events = ledger.events("ReleaseRecorded", from_block=ledger.deployment.deploy_block)
    return {"0x" + bytes(e.args.requestId).hex() for e in events}


def _release_once(live: LiveApi) -> httpx.Response:
    body = live.dept.release_request(live.grants[0], "id_card")
    return live.http.post("/v1/releases", json=body, headers={"Authorization": f"Bearer {live.dept.token}"})


def test_anvil_killed_mid_load_recovers_by_itself(
    compiled: CompilationResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = start_node("anvil", log_dir=tmp_path / "logs", state_path=tmp_path / "anvil-state.json", state_interval=1)
    node.supervise(interval=0.2)
    assert node.process is not None
    live = LiveApi(deploy_fresh(node, compiled), tmp_path / "api")
    try:
        time.sleep(1.5)  # the setup (members, documents, grants) is in the state file
        load = Load(live, clients=16)
        load.start()
        time.sleep(KILL_AT)
        head_before = node.w3.eth.block_number
        killed_at = time.monotonic()
        kill_offset = killed_at - load.started
        os.kill(node.process.pid, signal.SIGKILL)
        while node.restarts == 0:
            assert time.monotonic() - killed_at < 30, "the node was not started again"
            time.sleep(0.05)
        head_after = node.w3.eth.block_number
        time.sleep(max(0.0, DURATION - KILL_AT - (time.monotonic() - killed_at)))
        load.stop()
        # recovery: releases sent after the kill are answered 201 again without anyone doing anything
        after = [a.at for a in load.answers if a.status == 201 and a.kind == "release" and a.at > kill_offset + 1]
        assert after, f"no release answered 201 after the node was killed: {load.counts()}"
        recovered_in = min(after) - kill_offset
        assert _release_once(live).status_code == 201
        deadline = time.monotonic() + 30
        while live.unsettled() or live.vault.relayer.chain_behind():
            assert time.monotonic() < deadline, "intents left pending or the chain still behind the log"
            time.sleep(0.25)
        assert node.restarts >= 1

        counts = load.counts()
        allowed = {(201, None), (200, None), (503, "chain_unavailable"), (503, "release_pending")}
        assert {(status, code) for _kind, status, code in counts} <= allowed, counts
        assert counts[("release", 201, None)] > 0 and counts[("grant", 201, None)] > 0, counts
        # the outage was seen: callers answered 503, or (a restart quicker than any request that
        # needed the chain, as on a busy machine) the relayer's or the indexer's calls failing
        refused = sum(n for (_k, status, _c), n in counts.items() if status == 503)
        assert refused or "the chain did not answer" in caplog.text, "the outage was not seen"

        # nothing released without a receipt, nothing answered 201 lost: on chain and in the log
        released = [a for a in load.answers if a.kind == "release" and a.status == 201]
        on_chain, logged = _recorded_request_ids(live), live.log_ids()
        missing = [a.body["message"]["requestId"] for a in released if a.body["message"]["requestId"] not in on_chain]
        assert not missing, f"{len(missing)} releases answered 201 are not on chain: {live.vault.relayer.last_recovery}"
        assert all(a.answer["release_id"] in logged for a in released)
        # a release answered 503 was not delivered; sent again, it is (once) — the same signed request
        for a in [a for a in load.answers if a.kind == "release" and a.status == 503][:4] + released[:4]:
            again = live.http.post("/v1/releases", json=a.body, headers={"Authorization": f"Bearer {live.dept.token}"})
            assert again.status_code in (200, 201), again.text
            if a.status == 201:
                assert again.json()["release_id"] == a.answer["release_id"]
        recovery = live.vault.relayer.last_recovery
        assert recovery is None or recovery.clean, recovery
        # every grant answered 201 is on chain (those lost with the node's last block were sent again)
        ledger = live.deployed.ledger
        granted = {"0x" + bytes(e.args.grantId).hex() for e in ledger.events("GrantRecorded", from_block=0)}
        lost_grants = [
            a for a in load.answers if a.kind == "grant" and a.status == 201 and a.answer["grant_id"] not in granted
        ]
        print(
            f"\nhead {head_before} before the kill, {head_after} after the restart; recovered in {recovered_in:.1f} s;"
            f" answers {dict(counts)}; healed {live.vault.relayer.sender.healed}; lost grants {len(lost_grants)};"
            f" recovery {recovery}"
        )
        assert not lost_grants
        assert recovered_in < RECOVERY_LIMIT
    finally:
        live.close()
        node.stop()
