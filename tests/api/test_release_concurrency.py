"""The release path under concurrency, through a real HTTP server (uvicorn on a free port), with
the release relayer running as in `qcl dev`: many requests in flight, group commit, one log writer.

Every test runs on SQLite and on PostgreSQL (a throw-away database; a missing server fails it).

* 64 concurrent releases: every one answered 201, grouped into fewer transactions than requests,
  the release log's indexes run 0..N-1 without a gap, and the audit afterwards is clean;
* 64 concurrent calls of four kinds (releases, grants, revocations, pauses): all succeed, each
  lands on chain, the log is gap-free, the audit clean;
* a revocation landing while releases flow: no release of that grant is recorded after it;
* a grant with ``maxUses = 5`` under 20 concurrent requests releases exactly 5;
* the relayer killed (SIGKILL) between sending a grouped release and its block: after a restart
  the recorded releases have their log entries, and the same signed request returns the release.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from sqlalchemy import select

from api.app import create_app
from api.settings import Settings
from chain_client import CompilationResult, Node, free_port
from db.models import RelayerTransaction, ReleaseIntent, ReleaseLogRow
from db.store import Store
from qcl_client import QclClient, open_release
from tests.conftest import Deployed, create_pg_database, deploy_fresh, drop_pg_database
from vault import FileKeyRing, Vault

CARD = b"Resident identity card of Citizen Zhang"


class Live:
    """An API served by uvicorn in a thread, with logged-in members; its database SQLite (under
    ``tmp_path``) or PostgreSQL (``database_url``)."""

    def __init__(self, deployed: Deployed, tmp_path: Path, database_url: str | None = None) -> None:
        self.deployed = deployed
        settings = Settings(env="test", data_dir=tmp_path, public_url="http://testserver", checkpoints=False)
        self.vault = Vault(
            store=Store(database_url) if database_url else Store.sqlite(tmp_path / "vault.db"),
            keyring=FileKeyRing(tmp_path / "keyring.json", "test passphrase", scrypt_n=2**12),
            ledger=deployed.ledger,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings.model_copy(update={"public_url": self.url}), ledger=deployed.ledger, vault=self.vault)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.http = httpx.Client(base_url=self.url, timeout=60.0)
        self.admin = QclClient(http=self.http, account=deployed.admin)
        self.admin.login()
        self.provider, self.citizen, self.dept = (QclClient(http=self.http, account=Account.create()) for _ in range(3))
        self.auditor = QclClient(http=self.http, account=deployed.auditor)  # named by the deployment
        self.dept_key = x25519.X25519PrivateKey.generate()
        self.admin.onboard(self.provider.address, ["PROVIDER"], "Jinan Public Security Bureau", org_code="P1")
        self.admin.onboard(self.citizen.address, ["SUBJECT"], "Citizen Zhang")
        self.admin.onboard(
            self.dept.address,
            ["CONSUMER"],
            "Housing Provident Fund Center",
            org_code="C1",
            hpke_public_key=self.dept_key.public_key().public_bytes_raw(),
        )
        self.admin.register_resource("id_card", "Resident identity card", self.provider.address, 3)
        for client in (self.provider, self.citizen, self.dept, self.auditor):
            client.login()
        self.provider.store_document(self.citizen.address, "id_card", CARD)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.http.close()
        self.vault.store.dispose()

    def post_all(self, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
        """POST every release body at once (all in flight together)."""

        async def run() -> list[httpx.Response]:
            headers = {"Authorization": f"Bearer {self.dept.token}"}
            limits = httpx.Limits(max_connections=len(bodies))
            async with httpx.AsyncClient(base_url=self.url, timeout=60.0, headers=headers, limits=limits) as http:
                return list(await asyncio.gather(*(http.post("/v1/releases", json=b) for b in bodies)))

        return asyncio.run(run())

    def log_indexes(self) -> list[int]:
        with self.vault.store.session() as s:
            return [int(i) for i in s.scalars(select(ReleaseLogRow.idx).order_by(ReleaseLogRow.idx)).all()]


@pytest.fixture(params=["sqlite", "postgresql"])
def live(anvil: Node, compiled: CompilationResult, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Live]:
    """Each test on SQLite, then on a throw-away PostgreSQL database (a missing server fails it)."""
    url = create_pg_database("qcl_concurrency") if request.param == "postgresql" else None
    built = Live(deploy_fresh(anvil, compiled), tmp_path, url)
    try:
        yield built
    finally:
        built.close()
        if url is not None:
            drop_pg_database(url)


def test_64_concurrent_releases_grouped_and_logged_in_chain_order(live: Live) -> None:
    grants = [live.citizen.grant(live.dept.address, ["id_card"], f"purpose-{i}")["grant_id"] for i in range(4)]
    bodies = [live.dept.release_request(grants[i % 4], "id_card") for i in range(64)]
    answers = live.post_all(bodies)
    assert [a.status_code for a in answers] == [201] * 64, [a.json() for a in answers if a.status_code != 201]
    for body, answer in zip(bodies, answers, strict=True):
        opened = open_release(
            answer.json(),
            live.dept_key,
            grant_id=bytes.fromhex(body["message"]["grantId"][2:]),
            request_id=bytes.fromhex(body["message"]["requestId"][2:]),
        )
        assert opened.content == CARD
    assert live.log_indexes() == list(range(64))  # one writer: no gap, no duplicate
    relayer = live.vault.relayer
    assert relayer.items == 64 and relayer.groups < 64  # group commit: fewer transactions than requests
    blocks = {a.json()["block_number"] for a in answers}
    assert len(blocks) == relayer.groups
    report = live.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["violations"] == [] and report["releases"] == 64 and report["log_entries"] == 64
    # the same signed requests again: the same releases, nothing counted twice
    again = live.post_all(bodies[:8])
    assert [a.status_code for a in again] == [200] * 8
    assert [a.json()["release_id"] for a in again] == [a.json()["release_id"] for a in answers[:8]]
    assert live.log_indexes() == list(range(64))


def _post_at_once(live: Live, calls: list[tuple[QclClient, str, dict[str, Any]]]) -> list[httpx.Response]:
    """Every ``(caller, path, body)`` POSTed at once, each with its caller's token; answers in order."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(calls))
        async with httpx.AsyncClient(base_url=live.url, timeout=60.0, limits=limits) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(path, json=body, headers={"Authorization": f"Bearer {caller.token}"})
                        for caller, path, body in calls
                    )
                )
            )

    return asyncio.run(run())


def _grant_body(live: Live, purpose: str) -> dict[str, Any]:
    from chain_client.ids import new_nonce, purpose_id, resource_id

    now = int(time.time())
    message = {
        "subject": live.citizen.address,
        "grantee": live.dept.address,
        "resources": [resource_id("id_card")],
        "purpose": purpose_id(purpose),
        "validFrom": now - 60,
        "validUntil": now + 3600,
        "maxUses": 0,
        "nonce": new_nonce(),
        "deadline": now + 600,
    }
    return live.citizen._signed("Grant", message)


def test_64_concurrent_releases_grants_revocations_and_pauses(live: Live) -> None:
    """One burst of 64 valid calls of four kinds, all in flight together: 32 releases under four
    grants, 16 new grants, 8 revocations and 8 pauses of other grants. Every one succeeds, each
    lands on chain as asked, the log runs 0..31 without a gap and the audit is clean."""
    made = _post_at_once(live, [(live.citizen, "/v1/grants", _grant_body(live, f"setup-{i}")) for i in range(20)])
    assert [a.status_code for a in made] == [201] * 20, [a.json() for a in made if a.status_code != 201]
    setup = [a.json()["grant_id"] for a in made]
    used, to_revoke, to_pause = setup[:4], setup[4:12], setup[12:20]
    calls: list[tuple[QclClient, str, dict[str, Any]]] = []
    calls += [(live.dept, "/v1/releases", live.dept.release_request(used[i % 4], "id_card")) for i in range(32)]
    calls += [(live.citizen, "/v1/grants", _grant_body(live, f"burst-{i}")) for i in range(16)]
    calls += [
        (live.citizen, f"/v1/grants/{g}/revoke", live.citizen._signed("Revoke", live.citizen.revoke_message(g)))
        for g in to_revoke
    ]
    calls += [
        (live.citizen, f"/v1/grants/{g}/pause", live.citizen.signed_pause(live.citizen.pause_message(g, True)))
        for g in to_pause
    ]
    assert len(calls) == 64
    answers = _post_at_once(live, calls)
    failed = [(path, a.status_code, a.text[:200]) for (_, path, _), a in zip(calls, answers, strict=True) if a.is_error]
    assert failed == []
    ledger = live.deployed.ledger

    def state(grant_id: str) -> Any:
        return ledger.grant_state(bytes.fromhex(grant_id[2:]))

    assert sum(state(g).uses for g in used) == 32
    for answer in answers[32:48]:
        assert state(answer.json()["grant_id"]).subject == live.citizen.address
    assert all(state(g).revoked and not state(g).paused for g in to_revoke)
    assert all(state(g).paused and not state(g).revoked for g in to_pause)
    assert live.log_indexes() == list(range(32))  # only releases are logged, gap-free
    report = live.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["violations"] == [] and report["releases"] == 32 and report["log_entries"] == 32
    # the paused and revoked grants refuse a release now
    late = live.post_all([live.dept.release_request(g, "id_card") for g in (to_revoke[0], to_pause[0])])
    assert [(a.status_code, a.json()["code"]) for a in late] == [(403, "grant_revoked"), (403, "grant_paused")]


def test_a_revocation_mid_load_stops_every_later_release(live: Live) -> None:
    grant_id = live.citizen.grant(live.dept.address, ["id_card"], "loan-application")["grant_id"]
    bodies = [live.dept.release_request(grant_id, "id_card") for _ in range(40)]
    revoked: dict[str, Any] = {}

    def revoke_soon() -> None:
        time.sleep(0.05)
        revoked.update(live.citizen.revoke(grant_id))

    thread = threading.Thread(target=revoke_soon)
    thread.start()
    answers = live.post_all(bodies)
    thread.join()
    codes = {(a.status_code, a.json().get("code")) for a in answers}
    assert codes <= {(201, None), (403, "grant_revoked")}
    ledger = live.deployed.ledger
    revocation = ledger.events("GrantRevoked", from_block=ledger.deployment.deploy_block)
    (event,) = [e for e in revocation if "0x" + bytes(e.args.grantId).hex() == grant_id]
    cut = (event.blockNumber, event.logIndex)
    released = [
        (e.blockNumber, e.logIndex)
        for e in ledger.events("ReleaseRecorded", from_block=ledger.deployment.deploy_block)
        if "0x" + bytes(e.args.grantId).hex() == grant_id
    ]
    assert all(position < cut for position in released)  # nothing after the revocation's position
    assert len(released) == sum(a.status_code == 201 for a in answers)
    assert all(a.json()["block_number"] <= revoked["block_number"] for a in answers if a.status_code == 201)
    report = live.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["violations"] == []


def test_max_uses_five_releases_exactly_five_under_concurrency(live: Live) -> None:
    grant_id = live.citizen.grant(live.dept.address, ["id_card"], "benefit-review", max_uses=5)["grant_id"]
    answers = live.post_all([live.dept.release_request(grant_id, "id_card") for _ in range(20)])
    statuses = sorted((a.status_code, a.json().get("code")) for a in answers)
    assert statuses == [(201, None)] * 5 + [(403, "grant_exhausted")] * 15
    assert live.deployed.ledger.grant_state(bytes.fromhex(grant_id[2:])).uses == 5
    assert live.log_indexes() == list(range(5))


def test_groups_pipelined_while_a_block_is_awaited_are_logged_in_chain_order(live: Live) -> None:
    """With blocks on demand (a network's block time), releases that arrive while earlier groups
    wait for their block are sent as further groups at once, up to the pipeline's depth; one block
    then records them all, and the log follows the chain's order across the groups."""
    from db.release_log import release_id

    relayer = live.vault.relayer
    relayer.depth, relayer.linger = 8, 0.2  # room for every group, whatever the machine's pace
    grants = [live.citizen.grant(live.dept.address, ["id_card"], f"pipeline-{i}")["grant_id"] for i in range(3)]
    w3 = live.deployed.ledger.w3
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    answers: list[httpx.Response] = []
    waves = []
    try:
        for wave in range(3):
            bodies = [live.dept.release_request(grants[wave], "id_card") for _ in range(8)]
            thread = threading.Thread(target=lambda b=bodies: answers.extend(live.post_all(b)))
            thread.start()
            waves.append(thread)
            deadline = time.monotonic() + 30
            while _submitted(live) < 8 * (wave + 1):  # this wave sent, the earlier ones unmined
                assert time.monotonic() < deadline, f"{_submitted(live)} intents submitted"
                time.sleep(0.02)
        with live.vault.store.session() as s:
            sent = s.scalars(select(RelayerTransaction).where(RelayerTransaction.status == "sent")).all()
        assert relayer.in_flight == len(sent) >= 3  # a group per wave at least, all awaiting one block
        assert sorted(t.nonce for t in sent) == [min(t.nonce for t in sent) + i for i in range(len(sent))]
    finally:
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    for thread in waves:
        thread.join(60)
    assert [a.status_code for a in answers] == [201] * 24, [a.json() for a in answers if a.status_code != 201]
    assert len({a.json()["block_number"] for a in answers}) == 1  # three groups, one block
    ledger = live.deployed.ledger
    chain_order = [
        release_id(e.args.grantee, bytes(e.args.requestId))
        for e in ledger.events("ReleaseRecorded", from_block=ledger.deployment.deploy_block)
    ]
    with live.vault.store.session() as s:
        logged = s.scalars(select(ReleaseLogRow.release_id).order_by(ReleaseLogRow.idx)).all()
    assert list(logged) == chain_order and len(chain_order) == 24
    report = live.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["violations"] == [] and report["releases"] == 24 and report["log_entries"] == 24


def _submitted(live: Live) -> int:
    with live.vault.store.session() as s:
        return len(s.scalars(select(ReleaseIntent.id).where(ReleaseIntent.status == "submitted")).all())


# ---- the relayer killed between the send and the block ------------------------------------------

_CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from eth_account import Account
from chain_client import Deployment, Ledger, compile_contracts
from chain_client.nodes import connect
from chain_client.relayer import RawSender
from db.store import Store
from vault.releases import ReleaseRelayer
spec = json.loads(sys.argv[1])
node = connect(spec["url"])
ledger = Ledger(w3=node.w3, deployment=Deployment.from_json(spec["deployment"]), compiled=compile_contracts(),
                operator=Account.from_key(spec["key"]))
relay = ledger.relay
sender = RawSender(w3=node.w3, account=relay.account, chain_id=ledger.chain_id, nonces=relay.nonces)
ReleaseRelayer(store=Store(spec["db"]), ledger=ledger, sender=sender, receipt_timeout=600).step()
"""


def test_relayer_killed_between_send_and_block_logs_the_release_after_restart(live: Live, tmp_path: Path) -> None:
    from vault.releases import ReleaseRelayer

    grant_id = live.citizen.grant(live.dept.address, ["id_card"], "crash-drill")["grant_id"]
    live.vault.relayer.stop()  # the child process plays the relayer
    terms_row = live.vault.store  # noqa: F841 - the child writes to the same database
    body = live.dept.release_request(grant_id, "id_card")
    m = body["message"]
    from api.services.grants import grant_terms

    terms = grant_terms(live.vault.store, grant_id)
    assert terms is not None
    request, document_id = live.vault.prepare_release(
        terms=terms,
        resource=bytes.fromhex(m["resource"][2:]),
        request_id=bytes.fromhex(m["requestId"][2:]),
        deadline=int(m["deadline"]),
        signature=bytes.fromhex(body["signature"][2:]),
    )
    intent, created = live.vault.desk.admit(request, document_id=document_id)
    assert created
    w3 = live.deployed.ledger.w3
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        spec = {
            "url": live.deployed.node.url,
            "deployment": live.deployed.ledger.deployment.to_json(),
            "key": live.deployed.admin.key.to_0x_hex(),
            "db": live.vault.store.url,
        }
        root = str(Path(__file__).resolve().parents[2])
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(root=root), json.dumps(spec)],
            env={**os.environ, "PYTHONPATH": root},
        )
        deadline = time.monotonic() + 60
        while True:  # wait until the signed transaction is stored and sent, then kill the relayer
            with live.vault.store.session() as s:
                sent = s.scalars(select(RelayerTransaction).where(RelayerTransaction.status == "sent")).all()
            if sent and w3.provider.make_request("eth_getTransactionByHash", [sent[0].tx_hash]).get("result"):  # type: ignore[arg-type]
                break
            assert time.monotonic() < deadline and child.poll() is None, "the relayer never sent its transaction"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert live.deployed.ledger.grant_state(bytes.fromhex(grant_id[2:])).uses == 1  # recorded on chain...
    assert live.log_indexes() == []  # ...but not logged yet: the relayer died before the receipt
    with live.vault.store.session() as s:
        assert s.get(ReleaseIntent, intent.id).status == "submitted"  # type: ignore[union-attr]
    # a restarted relayer settles what was in flight
    restarted = ReleaseRelayer(store=live.vault.store, ledger=live.deployed.ledger, sender=live.vault.relayer.sender)
    assert restarted.reconcile() == 1
    assert live.log_indexes() == [0]
    again = live.http.post("/v1/releases", json=body, headers={"Authorization": f"Bearer {live.dept.token}"})
    assert again.status_code == 200, again.json()
    opened = open_release(
        again.json(), live.dept_key, grant_id=bytes.fromhex(grant_id[2:]), request_id=bytes.fromhex(m["requestId"][2:])
    )
    assert opened.content == CARD
    assert live.deployed.ledger.grant_state(bytes.fromhex(grant_id[2:])).uses == 1  # not counted twice
    report = live.auditor.call("POST", "/v1/audit/verify", json={})
    assert report["violations"] == []


def test_64_concurrent_grants_grouped_with_one_bad_signature(live: Live) -> None:
    """Grants take the same road: one multicall per group, each call checked on its own."""
    import secrets as _secrets

    from chain_client.ids import new_nonce, purpose_id, resource_id

    now = int(time.time())
    bodies = []
    for i in range(64):
        message = {
            "subject": live.citizen.address,
            "grantee": live.dept.address,
            "resources": [resource_id("id_card")],
            "purpose": purpose_id(f"purpose-{i}"),
            "validFrom": now - 60,
            "validUntil": now + 3600,
            "maxUses": 1,
            "nonce": new_nonce(),
            "deadline": now + 600,
        }
        bodies.append(live.citizen._signed("Grant", message))
    bodies[7]["signature"] = "0x" + _secrets.token_bytes(32).hex() + bodies[7]["signature"][66:]  # not the subject's

    async def run() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {live.citizen.token}"}
        async with httpx.AsyncClient(base_url=live.url, timeout=60.0, headers=headers) as http:
            return list(await asyncio.gather(*(http.post("/v1/grants", json=b) for b in bodies)))

    answers = asyncio.run(run())
    codes = [a.status_code for a in answers]
    assert codes[7] in (403, 422) and codes[:7] + codes[8:] == [201] * 63, [a.json() for a in answers]
    ledger = live.deployed.ledger
    for answer in answers[:7] + answers[8:]:
        assert ledger.grant_state(bytes.fromhex(answer.json()["grant_id"][2:])).subject == live.citizen.address
    blocks = {a.json()["block_number"] for a in answers if a.status_code == 201}
    assert len(blocks) < 63  # grouped: fewer transactions than grants


def test_concurrent_revocations_and_pauses_grouped_one_refused_alone(live: Live) -> None:
    """Revocations and pauses take the grants' road too: grouped into a few multicall transactions,
    each checked on its own; a stale pause sequence is refused alone (409) and undoes nothing."""
    from chain_client.ids import new_nonce, purpose_id, resource_id

    now = int(time.time())
    grant_bodies = []
    for i in range(24):
        message = {
            "subject": live.citizen.address,
            "grantee": live.dept.address,
            "resources": [resource_id("id_card")],
            "purpose": purpose_id(f"purpose-{i}"),
            "validFrom": now - 60,
            "validUntil": now + 3600,
            "maxUses": 0,
            "nonce": new_nonce(),
            "deadline": now + 600,
        }
        grant_bodies.append(live.citizen._signed("Grant", message))

    def post(calls: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
        async def run() -> list[httpx.Response]:
            headers = {"Authorization": f"Bearer {live.citizen.token}"}
            limits = httpx.Limits(max_connections=len(calls))
            async with httpx.AsyncClient(base_url=live.url, timeout=60.0, headers=headers, limits=limits) as http:
                return list(await asyncio.gather(*(http.post(path, json=b) for path, b in calls)))

        return asyncio.run(run())

    granted = post([("/v1/grants", b) for b in grant_bodies])
    assert [a.status_code for a in granted] == [201] * 24
    ids = [a.json()["grant_id"] for a in granted]
    calls = [
        (f"/v1/grants/{g}/revoke", live.citizen._signed("Revoke", live.citizen.revoke_message(g))) for g in ids[:12]
    ]
    calls += [
        (f"/v1/grants/{g}/pause", live.citizen.signed_pause(live.citizen.pause_message(g, True, sequence=1)))
        for g in ids[12:]
    ]
    stale = live.citizen.signed_pause(live.citizen.pause_message(ids[12], True, sequence=0))
    calls.append((f"/v1/grants/{ids[12]}/pause", stale))
    answers = post(calls)
    codes = [a.status_code for a in answers]
    assert codes[:24] == [200] * 24, [a.json() for a in answers]
    assert (codes[24], answers[24].json()["code"]) == (409, "stale_sequence")
    ledger = live.deployed.ledger
    states = [ledger.grant_state(bytes.fromhex(g[2:])) for g in ids]
    assert [s.revoked for s in states] == [True] * 12 + [False] * 12
    assert [s.paused for s in states] == [False] * 12 + [True] * 12
    assert len({a.json()["tx_hash"] for a in answers[:24]}) < 24  # grouped: fewer transactions than calls
