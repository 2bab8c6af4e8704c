"""The three pages in Debian's chromium (headless): a citizen, a department and an auditor at work;
the landing page and the API docs with no internet; accessibility; clear messages on failure."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest

from .conftest import DOCUMENT_TEXT, VENDOR, VIEWPORTS, Pages, screenshot

pytestmark = pytest.mark.slow


def _grant_row(page: Any, grant_id: str, status: str) -> Any:
    row = page.locator(f'#grants tr[data-grant="{grant_id}"]')
    row.and_(page.locator(f'[data-status="{status}"]')).wait_for()
    return row


def _message(page: Any, text: str) -> None:
    page.locator("#messages .msg", has_text=text).wait_for()


def test_citizen_sees_document_and_grant_then_pauses_resumes_revokes(pages: Pages) -> None:
    s = pages.seeded
    page = pages.open("/app/my")
    pages.sign_in(page, "citizen")
    docs = page.locator(f'#docs tr[data-document="{s.document_id}"]')
    docs.wait_for()
    assert "居民身份证" in docs.inner_text() and "济南市公安局" in docs.inner_text()
    row = _grant_row(page, s.grant_id, "active")
    assert "济南住房公积金中心" in row.inner_text() and "住房公积金提取" in row.inner_text()
    assert "有效" in row.inner_text()
    # who used my data: the seeded release, by the department's name, with the purpose
    timeline = page.locator("#timeline li").first
    timeline.wait_for()
    assert "济南住房公积金中心" in timeline.inner_text() and "住房公积金提取" in timeline.inner_text()
    screenshot(page, "my-data")
    page.set_viewport_size(VIEWPORTS["phone"])
    screenshot(page, "my-data")
    page.set_viewport_size(VIEWPORTS["desktop"])

    row.locator('button[data-action="pause"]').click()
    _message(page, "授权已暂停")
    row = _grant_row(page, s.grant_id, "paused")
    assert "已暂停" in row.inner_text()
    assert s.clients["citizen"].grant_detail(s.grant_id)["status"] == "paused"

    row.locator('button[data-action="resume"]').click()
    _message(page, "授权已恢复")
    row = _grant_row(page, s.grant_id, "active")
    assert s.clients["citizen"].grant_detail(s.grant_id)["status"] == "active"

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator('button[data-action="revoke"]').click()
    _message(page, "授权已撤销")
    row = _grant_row(page, s.grant_id, "revoked")
    assert "已撤销" in row.inner_text() and row.locator("button").count() == 0
    assert s.clients["citizen"].grant_detail(s.grant_id)["status"] == "revoked"


def test_citizen_answers_request_and_opens_correction(pages: Pages) -> None:
    s = pages.seeded
    page = pages.open("/app/my")
    pages.sign_in(page, "citizen")
    request = page.locator("#requests tr[data-request]").first
    request.wait_for()
    assert "纳税记录" in request.inner_text()
    request.locator("select").select_option(str(86400))
    request.locator('button[data-action="approve"]').click()
    _message(page, "已同意该申请")
    page.locator("#requests .empty").wait_for()
    granted = s.clients["dept"].access_requests(status="granted")
    assert granted and granted[0]["grant_id"]
    detail = s.clients["citizen"].grant_detail(granted[0]["grant_id"])
    assert detail["validUntil"] - detail["validFrom"] == 86400 and detail["maxUses"] == 2

    doc = page.locator(f'#docs tr[data-document="{s.document_id}"]')
    doc.get_by_role("button", name="申请更正").click()
    doc.locator("textarea").fill("出生日期有误")
    doc.get_by_role("button", name="提交").click()
    _message(page, "更正申请已提交")
    correction = page.locator("#corrections tr", has_text="出生日期有误")
    correction.wait_for()
    assert "处理中" in correction.inner_text() and "剩余" in correction.inner_text()


def test_department_relays_a_citizens_qr_grant_and_opens_the_release(pages: Pages) -> None:
    s = pages.seeded
    citizen = pages.open("/app/my", viewport="phone")
    pages.sign_in(citizen, "citizen")
    citizen.fill("#qr-grantee", s.addresses["dept"])
    citizen.get_by_label("居民身份证").check()
    citizen.select_option("#qr-purpose", label="住房公积金提取")
    citizen.get_by_role("button", name="生成二维码").click()
    qr_text = citizen.locator("#qr-text")
    qr_text.wait_for()
    text = qr_text.input_value()
    assert text.startswith("qcl-grant:") and citizen.locator("#qr-out img").is_visible()
    screenshot(citizen, "my-data-qr")

    desk = pages.open("/app/desk")
    pages.sign_in(desk, "dept")
    desk.set_input_files("#hpke-file", str(s.keys["dept_hpke"]))
    desk.locator("#hpke-state", has_text="解密密钥已载入").wait_for()
    # A QR code whose signature was altered: the service refuses it, the desk says so.
    body = json.loads(base64.urlsafe_b64decode(text.removeprefix("qcl-grant:") + "=="))
    body["signature"] = body["signature"][:10] + ("0" if body["signature"][10] != "0" else "1") + body["signature"][11:]
    forged = "qcl-grant:" + base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    desk.fill("#relay-text", forged)
    desk.get_by_role("button", name="转交上链").click()
    _message(desk, "签名无效，服务拒绝了该签名。")
    desk.fill("#relay-text", text)
    desk.get_by_role("button", name="转交上链").click()
    relayed = desk.locator("#relay-out [data-grant]")
    relayed.wait_for()
    grant_id = relayed.get_attribute("data-grant")
    assert "张三" in relayed.inner_text() and "居民身份证" in relayed.inner_text()
    row = _grant_row(desk, grant_id, "active")
    assert "1 / 1" in row.inner_text()  # a one-time grant: one use left of one

    row.locator('button[data-action="release"]').click()
    _message(desk, "已调取")
    release = desk.locator("#releases tr[data-release]").first
    release.locator('button[data-action="open"]').click()
    content = release.locator("pre.content")
    content.wait_for()
    assert content.inner_text() == DOCUMENT_TEXT
    assert "承诺值核对一致" in release.inner_text()
    _grant_row(desk, grant_id, "exhausted")
    screenshot(desk, "desk")
    desk.set_viewport_size(VIEWPORTS["phone"])
    screenshot(desk, "desk")


def test_auditor_filters_verifies_and_checks_an_inclusion_proof(pages: Pages) -> None:
    s = pages.seeded
    auditor = s.clients["auditor"]
    # The checkpoint thread anchors the log's root within a second of the release: wait for it.
    deadline = time.monotonic() + 30
    while not any(c["tree_size"] >= 1 for c in auditor.call("GET", "/v1/audit/checkpoints")):
        assert time.monotonic() < deadline, "no checkpoint anchored within 30 s"
        time.sleep(0.1)
    page = pages.open("/app/audit")
    pages.sign_in(page, "auditor")
    page.locator("#trail tr[data-event]").first.wait_for()
    page.fill("#f-subject", s.addresses["citizen"])
    page.get_by_role("button", name="筛选").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#trail tr[data-event]')].every(r => r.innerText.includes('张三'))"
    )
    events = page.locator("#trail tr[data-event]").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert "GrantRecorded" in events and "ReleaseRecorded" in events

    page.get_by_role("button", name="运行验证").click()
    result = page.locator("#verify-result")
    result.wait_for(timeout=60_000)
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    assert page.locator("#verify-bar").get_attribute("value") == "100"

    page.locator(f'#releases tr[data-release="{s.release_id}"] button[data-action="proof"]').click()
    proof = page.locator("#proof-result")
    proof.wait_for()
    assert proof.get_attribute("data-ok") == "true", proof.inner_text()
    assert "包含证明有效" in proof.inner_text()
    assert "济南住房公积金中心" in page.locator("#proof-out").inner_text()
    screenshot(page, "audit")
    page.set_viewport_size(VIEWPORTS["phone"])
    screenshot(page, "audit")


def test_landing_page_and_docs_load_nothing_from_elsewhere(pages: Pages) -> None:
    for viewport in VIEWPORTS:
        page = pages.open("/", viewport=viewport)
        links = page.locator(".tiles a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert links == ["/app/my", "/app/desk", "/app/audit"]
        screenshot(page, "landing")
    docs, redoc = pages.open("/docs"), pages.open("/redoc")  # both render at once
    docs.locator(".swagger-ui .info .title", has_text="Quanchenglian").wait_for(timeout=60_000)
    redoc.locator("h1", has_text="Quanchenglian").wait_for(timeout=60_000)
    screenshot(docs, "docs", full_page=False)  # third-party UIs: the desktop size only (a relayout
    screenshot(redoc, "redoc", full_page=False)  # of the whole API costs seconds on a busy machine)
    # (pages fixture: every request went to this server)


def test_language_switch_is_kept(pages: Pages) -> None:
    page = pages.open("/app/my")
    assert page.locator("h1").inner_text() == "我的数据"
    page.get_by_role("button", name="English").click()
    assert page.locator("h1").inner_text() == "My data"
    page.reload()
    assert page.locator("h1").inner_text() == "My data"
    assert page.evaluate("document.documentElement.lang") == "en"


AXE = VENDOR / "axe.min.js"


@pytest.mark.parametrize(
    "path,who", [("/", None), ("/app/my", "citizen"), ("/app/desk", "dept"), ("/app/audit", "auditor")]
)
def test_no_serious_accessibility_violation(pages: Pages, path: str, who: str | None) -> None:
    page = pages.open(path)
    if who:
        pages.sign_in(page, who)
    page.add_script_tag(url="/static/vendor/axe.min.js")
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"{path} at {viewport}: {bad}"


def test_messages_when_unreachable_expired_or_refused(pages: Pages) -> None:
    s = pages.seeded
    page = pages.open("/app/my")
    pages.sign_in(page, "citizen")
    page.locator("#grants tr[data-grant]").first.wait_for()

    page.route(re.compile(r".*/v1/.*"), lambda route: route.abort())
    page.locator('[data-refresh="grants"]').click()
    _message(page, "无法连接服务，请检查网络后重试。")
    page.get_by_role("button", name="English").click()
    page.locator('[data-refresh="grants"]').click()
    _message(page, "The service cannot be reached. Check the network and try again.")
    page.unroute(re.compile(r".*/v1/.*"))

    page.evaluate("token => { window.qclSession.token = token }", s.expired_token("citizen"))
    page.locator('[data-refresh="grants"]').click()
    _message(page, "Your session has expired. Please sign in again.")
    assert page.locator("#signin").is_visible()
    page.get_by_role("button", name="中文").click()
    pages.sign_in(page, "citizen")
    page.evaluate("token => { window.qclSession.token = token }", s.expired_token("citizen"))
    page.locator('[data-refresh="docs"]').click()
    _message(page, "登录已过期，请重新登录。")
    screenshot(page, "my-data-expired")

    # An injected EIP-1193 wallet whose owner refuses to sign.
    wallet = pages.open("/app/my")
    wallet.context.add_init_script(
        f"""window.ethereum = {{
          request: async ({{method}}) => {{
            if (method === 'eth_chainId') return '0x7a69';
            if (method === 'eth_requestAccounts' || method === 'eth_accounts') return ['{s.addresses["citizen"]}'];
            if (method === 'personal_sign') throw Object.assign(new Error('User rejected the request.'), {{code: 4001}});
            throw Object.assign(new Error('unsupported ' + method), {{code: 4200}});
          }},
          on() {{}}, removeListener() {{}},
        }};"""
    )
    wallet.reload()
    wallet.get_by_role("button", name="使用浏览器钱包登录").click()
    _message(wallet, "您拒绝了签名请求，操作未执行。")
    assert wallet.locator("#signin").is_visible()
