"""Checkpoints of the release log are anchored every N entries or T seconds after growth."""

from __future__ import annotations

from api.background import CheckpointAnchor
from tests.api.conftest import Platform

CARD = b"card"


def test_checkpoint_every_n_entries_or_t_seconds(platform: Platform) -> None:
    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    anchor = CheckpointAnchor(p.vault, interval=5.0, every=3)
    assert anchor.step(now=0.0) is False  # empty log
    p.dept.release(grant_id, "id_card", p.dept_key)
    assert anchor.step(now=1.0) is False  # one entry, one second: not yet
    assert anchor.step(now=5.9) is False
    assert anchor.step(now=6.1) is True  # five seconds after it grew
    assert [c.tree_size for c in p.deployed.ledger.checkpoints()] == [1]
    for _ in range(3):
        p.dept.release(grant_id, "id_card", p.dept_key)
    assert anchor.step(now=6.2) is True  # three new entries: at once
    assert [c.tree_size for c in p.deployed.ledger.checkpoints()] == [1, 4]
    assert anchor.step(now=100.0) is False  # nothing new
    report = p.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["ok"] and report["checkpoints"] == 2


def test_the_api_process_anchors_within_seconds(platform: Platform) -> None:
    import time

    p = platform
    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    p.dept.release(grant_id, "id_card", p.dept_key)
    anchor = CheckpointAnchor(p.vault, interval=0.5, every=100, tick=0.1)
    anchor.start()
    try:
        deadline = time.monotonic() + 20
        while not p.deployed.ledger.checkpoints() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        anchor.stop()
    assert [c.tree_size for c in p.deployed.ledger.checkpoints()] == [1]
