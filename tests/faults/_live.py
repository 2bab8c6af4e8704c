"""An API served by uvicorn in a thread over a deployment, and a load of grants and releases
against it that records every answer (shared by the fault tests and scripts/bench_faults.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from sqlalchemy import select

from api.app import create_app
from api.settings import Settings
from chain_client import free_port
from chain_client.relayer import RawSender
from db.models import ReleaseIntent, ReleaseLogRow
from db.store import Store
from qcl_client import QclClient
from tests.conftest import Deployed
from vault import FileKeyRing, Vault
from vault.releases import ReleaseRelayer

CARD = b"Resident identity card"


class LiveApi:
    """``qcl dev``'s API process (relayer, indexer follower) on ``deployed``, with members:
    a provider, one department, and ``citizens`` citizens each holding a document and a grant."""

    def __init__(self, deployed: Deployed, data: Path, *, citizens: int = 4, **settings: Any) -> None:
        self.deployed = deployed
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"release_timeout": 10.0, "checkpoints": False, "index_interval": 0.5, **settings}
        config = Settings(env="test", data_dir=data, public_url=self.url, **options)
        self.store = Store.sqlite(data / "vault.db")
        self.vault = Vault(
            store=self.store,
            keyring=FileKeyRing(data / "keyring.json", "test passphrase", scrypt_n=2**12),
            ledger=deployed.ledger,
        )
        # the release relayer sends with its own account, as in `qcl dev` (QCL_RELEASE_KEY)
        self.releaser = releaser = Account.create()
        deployed.node.fund(releaser.address)
        sender = RawSender(w3=deployed.ledger.w3, account=releaser, chain_id=deployed.ledger.chain_id)
        relayer = ReleaseRelayer(store=self.store, ledger=deployed.ledger, sender=sender)
        app = create_app(config, ledger=deployed.ledger, vault=self.vault, relayer=relayer)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.http = httpx.Client(base_url=self.url, timeout=60.0)
        admin = QclClient(http=self.http, account=deployed.admin)
        admin.login()
        self.provider = QclClient(http=self.http, account=Account.create())
        self.dept = QclClient(http=self.http, account=Account.create())
        self.dept_key = x25519.X25519PrivateKey.generate()
        admin.onboard(self.provider.address, ["PROVIDER"], "Jinan Public Security Bureau", org_code="P1")
        admin.onboard(
            self.dept.address,
            ["CONSUMER"],
            "Housing Provident Fund Center",
            org_code="C1",
            hpke_public_key=self.dept_key.public_key().public_bytes_raw(),
        )
        admin.register_resource("id_card", "Resident identity card", self.provider.address, 3)
        self.provider.login()
        self.dept.login()
        self.citizens: list[QclClient] = []
        self.grants: list[str] = []
        for i in range(citizens):
            citizen = QclClient(http=self.http, account=Account.create())
            admin.onboard(citizen.address, ["SUBJECT"], f"Citizen {i}")
            citizen.login()
            self.provider.store_document(citizen.address, "id_card", CARD)
            self.grants.append(citizen.grant(self.dept.address, ["id_card"], "loan-application")["grant_id"])
            self.citizens.append(citizen)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.http.close()
        self.store.dispose()

    def log_ids(self) -> set[str]:
        with self.store.session() as s:
            return set(s.scalars(select(ReleaseLogRow.release_id)).all())

    def unsettled(self) -> int:
        with self.store.session() as s:
            rows = s.scalars(select(ReleaseIntent.status)).all()
        return sum(status in ("pending", "submitted") for status in rows)


@dataclass
class Answer:
    kind: str  # "release" or "grant"
    at: float  # seconds since the load started
    status: int  # 0: no HTTP answer at all
    code: str | None
    body: dict[str, Any]
    answer: dict[str, Any]


@dataclass
class Load:
    """``clients`` threads, each a department client (releases) or, one in four, a citizen
    (grants), sending one request after another until :meth:`stop`."""

    live: LiveApi
    clients: int = 16
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    started: float = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        for i in range(self.clients):
            granting = i % 4 == 3 and i // 4 < len(self.live.citizens)
            target = self._grants if granting else self._releases
            thread = threading.Thread(target=target, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _record(self, kind: str, body: dict[str, Any], response: httpx.Response | None) -> None:
        at = time.monotonic() - self.started
        if response is None:
            self.answers.append(Answer(kind, at, 0, "no_answer", body, {}))
            return
        try:
            data = response.json()
        except ValueError:
            data = {"code": "not_json"}
        code = data.get("code") if response.status_code >= 400 else None
        self.answers.append(Answer(kind, at, response.status_code, code, body, data))

    def _releases(self, i: int) -> None:
        live = self.live
        dept = QclClient(http=live.http, account=live.dept.account, token=live.dept.token)
        headers = {"Authorization": f"Bearer {live.dept.token}"}
        with httpx.Client(base_url=live.url, timeout=60.0, headers=headers) as http:
            n = 0
            while not self._stop.is_set():
                body = dept.release_request(live.grants[(i + n) % len(live.grants)], "id_card")
                n += 1
                try:
                    response: httpx.Response | None = http.post("/v1/releases", json=body)
                except httpx.HTTPError as exc:
                    self.answers.append(
                        Answer("release", time.monotonic() - self.started, 0, type(exc).__name__, body, {})
                    )
                    self._stop.wait(0.2)
                    continue
                self._record("release", body, response)
                if response is None or response.status_code >= 500:
                    self._stop.wait(0.2)

    def _grants(self, i: int) -> None:
        live = self.live
        citizen = live.citizens[i // 4]
        with httpx.Client(base_url=live.url, timeout=60.0) as http:
            own = QclClient(http=http, account=citizen.account, token=citizen.token)
            while not self._stop.is_set():
                try:
                    own._domain = citizen._domain
                    answer = own.grant(live.dept.address, ["id_card"], "benefit-review")
                    self.answers.append(Answer("grant", time.monotonic() - self.started, 201, None, {}, answer))
                except httpx.HTTPError:
                    self.answers.append(Answer("grant", time.monotonic() - self.started, 0, "no_answer", {}, {}))
                    self._stop.wait(0.2)
                except Exception as exc:  # noqa: BLE001 - an ApiError: record its status and code
                    status = int(getattr(exc, "status", 0))
                    body = getattr(exc, "body", {}) or {}
                    self.answers.append(
                        Answer("grant", time.monotonic() - self.started, status, body.get("code"), {}, body)
                    )
                    self._stop.wait(0.2)

    def counts(self) -> Counter[tuple[str, int, str | None]]:
        return Counter((a.kind, a.status, a.code) for a in self.answers)
