"""The pages in a real browser: Debian's chromium driven by Playwright, against ``qcl dev`` (anvil,
the API, the release relayer, the indexer and checkpoints in one process), seeded through the API
with the dev ADMIN key of ``accounts.json``.

Nothing is skipped: without ``/usr/bin/chromium`` (``make`` installs it) or without the vendor files
(``make pages`` copies them) the suite fails with a message saying which.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account

from api.pages import VENDOR
from chain_client import free_port
from chain_client._paths import project_root
from qcl_client import QclClient

CHROMIUM = Path(os.environ.get("QCL_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = project_root() / "build" / "screenshots"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
JWT_SECRET = "pages-suite-jwt-secret-0123456789abcdef"
QCL = str(Path(sys.executable).with_name("qcl"))

DOCUMENT_TEXT = "居民身份证（合成数据）\n姓名：张三\n证件号码：370102199001011234\n签发机关：济南市公安局历下分局\n"
PURPOSE = "housing-provident-fund-withdrawal"


@dataclass
class Seeded:
    url: str
    data_dir: Path
    keys: dict[str, Path]
    addresses: dict[str, str]
    grant_id: str
    document_id: str
    release_id: str
    request_id: str
    clients: dict[str, QclClient] = field(default_factory=dict)

    def expired_token(self, who: str) -> str:
        """A token for ``who`` signed with the server's key but expired a minute ago."""
        issued = int(time.time()) - 3600
        claims = {
            "sub": self.addresses[who],
            "aud": "qcl-api",
            "iss": self.url.split("://", 1)[1],
            "iat": issued,
            "nbf": issued,
            "exp": issued + 60,
            "jti": "expired",
        }
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"qcl dev exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("qcl dev did not answer /health")


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make test-python` installs it (apt-get install -y chromium)")
    if not (VENDOR / "ethers.min.js").is_file():
        pytest.fail(f"{VENDOR} is empty: run `make pages` (node scripts/build_pages.mjs) first")
    return CHROMIUM


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``qcl dev`` on free ports with a fresh chain; its URL and data directory.

    ``QCL_PAGES_SERVER="URL DATA_DIR"`` uses a ``qcl dev`` already running (started with
    ``QCL_JWT_SECRET`` set to this module's ``JWT_SECRET``), to work on the pages faster."""
    if os.environ.get("QCL_PAGES_SERVER"):
        url, running_dir = os.environ["QCL_PAGES_SERVER"].split()
        yield url, Path(running_dir)
        return
    data_dir = tmp_path_factory.mktemp("pages-dev")
    port = free_port()
    env = dict(os.environ)
    env.update(
        QCL_DATA_DIR=str(data_dir),
        QCL_API_PORT=str(port),
        QCL_CHAIN_PORT=str(free_port()),
        QCL_PERSIST_CHAIN="false",
        QCL_JWT_SECRET=JWT_SECRET,
        QCL_CHECKPOINT_INTERVAL="0.5",
        QCL_INDEX_INTERVAL="0.5",
        QCL_VERIFY_WORKERS="1",
        QCL_RATE_LIMIT_CHALLENGE_ADDRESS="1000/minute",  # the same few members sign in again and again
    )
    proc = subprocess.Popen(
        [QCL, "dev"], env=env, cwd=project_root(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc)
        yield url, data_dir
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _write_key(path: Path, hex_key: str) -> Path:
    path.write_text(hex_key + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def seeded(server: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Members, catalog, purposes, a document issued to the citizen, a grant and a release."""
    url, data_dir = server
    keys_dir = tmp_path_factory.mktemp("pages-keys")
    accounts = json.loads((data_dir / "accounts.json").read_text())
    admin = QclClient.connect(url, accounts["admin"]["private_key"])
    admin.login()
    people = {name: Account.create() for name in ("provider", "citizen", "dept")}
    clients = {name: QclClient.connect(url, account.key) for name, account in people.items()}
    clients["auditor"] = QclClient.connect(url, accounts["auditor"]["private_key"])
    hpke = x25519.X25519PrivateKey.generate()
    admin.onboard(people["provider"].address, ["PROVIDER"], "济南市公安局", org_code="11370100MB0001")
    admin.onboard(people["citizen"].address, ["SUBJECT"], "张三")
    admin.onboard(
        people["dept"].address,
        ["CONSUMER"],
        "济南住房公积金中心",
        org_code="12370100MB0002",
        hpke_public_key=hpke.public_key().public_bytes_raw(),
    )
    admin.register_resource("id_card", "居民身份证", people["provider"].address, 3)
    admin.register_resource("tax_record", "纳税记录", people["provider"].address, 2)
    admin.call(
        "POST",
        "/v1/purposes",
        json={
            "code": PURPOSE,
            "name_zh": "住房公积金提取",
            "name_en": "Housing provident fund withdrawal",
            "legal_basis": "《住房公积金管理条例》第二十四条",
        },
    )
    for client in clients.values():
        client.login()
    document = clients["provider"].store_document(people["citizen"].address, "id_card", DOCUMENT_TEXT.encode())
    grant = clients["citizen"].grant(people["dept"].address, ["id_card"], PURPOSE, max_uses=5)
    body = clients["dept"].release_request(grant["grant_id"], "id_card")
    answer = clients["dept"].call("POST", "/v1/releases", json=body)
    # An access request for the citizen to answer in the page.
    clients["dept"].request_access(people["citizen"].address, ["tax_record"], PURPOSE, valid_for=7 * 86400, max_uses=2)
    keys = {name: _write_key(keys_dir / f"{name}.key", account.key.hex()) for name, account in people.items()}
    keys["auditor"] = _write_key(keys_dir / "auditor.key", accounts["auditor"]["private_key"])
    keys["dept_hpke"] = _write_key(keys_dir / "dept.hpke", hpke.private_bytes_raw().hex())
    addresses = {name: account.address for name, account in people.items()}
    addresses["auditor"] = accounts["auditor"]["address"]
    return Seeded(
        url=url,
        data_dir=data_dir,
        keys=keys,
        addresses=addresses,
        grant_id=grant["grant_id"],
        document_id=document["document_id"],
        release_id=answer["release_id"],
        request_id=body["message"]["requestId"],
        clients=clients,
    )


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in the main thread while it
    is open, so it must be closed before another module's tests (in the same xdist worker) call
    ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


class Pages:
    """Browser contexts on the seeded server; every request the pages make is recorded."""

    def __init__(self, browser: Any, seeded: Seeded) -> None:
        self.browser, self.seeded = browser, seeded
        self.requests: list[str] = []
        self.contexts: list[Any] = []

    def open(self, path: str, *, viewport: str = "desktop", lang: str = "zh") -> Any:
        context = self.browser.new_context(viewport=VIEWPORTS[viewport], locale="zh-CN", timezone_id="UTC")
        context.add_init_script(f"localStorage.getItem('qcl.lang') || localStorage.setItem('qcl.lang', '{lang}')")
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda request: self._blocked(request))
        page.goto(self.seeded.url + path)
        return page

    def _blocked(self, request: Any) -> None:
        if "ERR_BLOCKED_BY_CSP" in (request.failure or ""):  # refused by the page's policy: never sent
            self.requests.remove(request.url)

    def sign_in(self, page: Any, who: str) -> None:
        page.set_input_files("#signin-keyfile", str(self.seeded.keys[who]))
        page.wait_for_selector("#account:not([hidden])")
        page.wait_for_selector("body[data-state=ready]")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Any, seeded: Seeded) -> Iterator[Pages]:
    opened = Pages(browser, seeded)
    yield opened
    opened.close()
    outside = [u for u in opened.requests if not u.startswith((seeded.url, "data:", "blob:"))]
    assert not outside, f"the pages fetched from elsewhere: {outside}"


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Screenshot at the page's current viewport into build/screenshots/; its path printed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path
