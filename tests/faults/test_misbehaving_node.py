"""A node that misbehaves as consortium nodes do (issue 16), through a JSON-RPC proxy in front of
anvil: a transaction it says it accepted and then loses, internal errors, receipts that come late,
a slow node (2 s per call), batches limited to 50 calls. The relayers correct themselves and
callers see either success or a clear 503; the same signed request later returns its release."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chain_client import CompilationResult, connect, start_node
from tests.conftest import deploy_fresh
from tests.faults._live import LiveApi
from tests.faults.rpcproxy import RpcProxy


@pytest.fixture(scope="module")
def rig(compiled: CompilationResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApi, RpcProxy]]:
    tmp = tmp_path_factory.mktemp("misbehaving")
    node = start_node("anvil", log_dir=tmp / "logs")
    proxy = RpcProxy(str(node.url))
    live = LiveApi(deploy_fresh(connect(proxy.url), compiled), tmp / "api", citizens=2, release_timeout=8.0)
    yield live, proxy
    live.close()
    proxy.close()
    node.stop()


@pytest.fixture
def faults(rig: tuple[LiveApi, RpcProxy]) -> Iterator[tuple[LiveApi, RpcProxy]]:
    live, proxy = rig
    yield live, proxy
    proxy.drop_transactions, proxy.delay, proxy.receipt_delay = 0, 0.0, 0.0
    proxy.fail.clear()


def _post_all(live: LiveApi, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {live.dept.token}"}
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=live.url, timeout=90, headers=headers, limits=limits) as http:
            return list(await asyncio.gather(*(http.post("/v1/releases", json=b) for b in bodies)))

    return asyncio.run(run())


def _requests(live: LiveApi, n: int) -> list[dict[str, Any]]:
    return [live.dept.release_request(live.grants[i % len(live.grants)], "id_card") for i in range(n)]


def _on_chain(live: LiveApi) -> set[str]:
    ledger = live.deployed.ledger
    return {"0x" + bytes(e.args.requestId).hex() for e in ledger.events("ReleaseRecorded", from_block=0)}


def test_transactions_the_node_lost_are_sent_again(faults: tuple[LiveApi, RpcProxy]) -> None:
    live, proxy = faults
    proxy.drop_transactions = 2  # "accepted", never forwarded: the next grant's and release's
    grant = live.citizens[0].grant(live.dept.address, ["id_card"], "dropped-once")["grant_id"]
    bodies = [live.dept.release_request(grant, "id_card") for _ in range(4)]
    answers = _post_all(live, bodies)
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len(proxy.dropped) == 2
    assert {b["message"]["requestId"] for b in bodies} <= _on_chain(live)


def test_internal_errors_and_late_receipts(faults: tuple[LiveApi, RpcProxy]) -> None:
    live, proxy = faults
    proxy.fail["eth_sendRawTransaction"] = 2
    proxy.receipt_delay = 2.0
    bodies = _requests(live, 6)
    answers = _post_all(live, bodies)
    assert {a.status_code for a in answers} <= {201, 503}, [a.text for a in answers]
    assert all(a.json()["code"] in ("chain_unavailable", "release_pending") for a in answers if a.status_code == 503)
    assert proxy.fail["eth_sendRawTransaction"] == 0
    proxy.receipt_delay = 0.0
    again = _post_all(live, bodies)
    assert {a.status_code for a in again} <= {200, 201}, [a.text for a in again]
    assert {b["message"]["requestId"] for b in bodies} <= _on_chain(live)


def test_a_run_of_refused_sends_fails_no_release(faults: tuple[LiveApi, RpcProxy]) -> None:
    """Five sends in a row refused with an internal error (a node restarting, a full pool): a
    refusal is never the releases' fault, so none of them is failed for it (it was: three refusals
    within milliseconds, the relayer resending at once, made a release final ``502
    transaction_failed`` and its signed request useless). Callers see 201 or a clear 503, and the
    same signed requests then return their releases."""
    live, proxy = faults
    proxy.fail["eth_sendRawTransaction"] = 5
    bodies = _requests(live, 6)
    answers = _post_all(live, bodies)
    codes = {(a.status_code, a.json().get("code")) for a in answers}
    assert codes <= {(201, None), (503, "release_pending"), (503, "chain_unavailable")}, codes
    assert proxy.fail["eth_sendRawTransaction"] == 0
    again = _post_all(live, bodies)
    assert {a.status_code for a in again} <= {200, 201}, [a.text for a in again]
    assert {b["message"]["requestId"] for b in bodies} <= _on_chain(live)


def test_a_slow_node_gives_success_or_a_clear_503(faults: tuple[LiveApi, RpcProxy]) -> None:
    live, proxy = faults
    proxy.delay = 2.0  # every JSON-RPC call takes 2 s
    bodies = _requests(live, 4)
    answers = _post_all(live, bodies)
    codes = {(a.status_code, a.json().get("code")) for a in answers}
    assert codes <= {(201, None), (503, "release_pending"), (503, "chain_unavailable")}, codes
    proxy.delay = 0.0
    again = _post_all(live, bodies)
    assert [a.status_code for a in again] == [200 if a.status_code == 201 else a.status_code for a in again]
    assert {a.status_code for a in again} <= {200, 201}, [a.text for a in again]
    firsts = {a.json()["release_id"] for a in answers if a.status_code == 201}
    assert firsts <= {a.json()["release_id"] for a in again}


def test_batches_stay_within_fifty_calls(faults: tuple[LiveApi, RpcProxy]) -> None:
    live, proxy = faults
    proxy.batches.clear()
    answers = _post_all(live, _requests(live, 64))
    assert [a.status_code for a in answers] == [201] * 64, {a.text for a in answers if a.status_code != 201}
    assert max(proxy.batches, default=0) <= 50
