"""Webhooks (SPEC §9.1): owner-only resources, URL checks (SSRF), Standard Webhooks signatures,
per-receiver order, back-off through a 10-minute outage (the deliverer's clock is moved, nothing
sleeps), giving up after 24 hours, and a revocation at a live receiver within 5 seconds."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from api.background import IndexFollower
from api.notifications import UnsafeUrl, WebhookDeliverer, backoff, check_url
from api.routers.events import MAX_WEBHOOKS
from qcl_client import ApiError, QclClient
from tests.api.conftest import Platform


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A real HTTP server on a free port that records every request; ``up`` False answers 503."""

    up: bool = True
    log: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = 200 if receiver.up else 503
                with receiver.arrived:
                    receiver.log.append(
                        Received(time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def delivered(self) -> list[dict[str, Any]]:
        """What a receiver keeps: each event once (by id), in the order it was accepted."""
        seen: dict[str, dict[str, Any]] = {}
        for r in self.log:
            if r.answered == 200:
                seen.setdefault(r.event["id"], r.event)
        return list(seen.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _expect(code: str, status: int, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ApiError) as caught:
        fn(*args, **kwargs)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body


def _hook(client: QclClient, url: str, types: list[str] | None = None) -> dict[str, Any]:
    return dict(client.call("POST", "/v1/webhooks", json={"url": url, "types": types or []}))


def _ask(p: Platform, n: int) -> None:
    """``n`` access requests from the department to the citizen (an event each, to both)."""
    body = {"subject": p.citizen.address, "resources": ["tax_record"], "purpose": "x", "valid_for": 600}
    for _ in range(n):
        p.dept.call("POST", "/v1/access-requests", json=body)


def _feed(client: QclClient) -> list[dict[str, Any]]:
    return list(client.call("GET", "/v1/events", params={"limit": 500})["items"])


def test_webhooks_are_their_owners_alone(
    platform: Platform, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = platform
    created = _hook(p.dept, receiver.url, ["grant.revoked", "access_request.*"])
    hid = created["webhook_id"]
    assert created["secret"].startswith("whsec_") and created["types"] == ["access_request.*", "grant.revoked"]
    listed = p.dept.call("GET", "/v1/webhooks")
    assert [h["webhook_id"] for h in listed["items"]] == [hid] and "secret" not in listed["items"][0]
    assert listed["total"] == 1 and p.citizen.call("GET", "/v1/webhooks")["total"] == 0
    for other in (p.citizen, p.admin, p.auditor):
        _expect("webhook_not_found", 404, other.call, "GET", f"/v1/webhooks/{hid}/deliveries")
        _expect("webhook_not_found", 404, other.call, "DELETE", f"/v1/webhooks/{hid}")
    _expect("not_authenticated", 401, p.stranger().call, "GET", "/v1/webhooks")
    _expect("invalid_input", 422, _hook, p.dept, receiver.url, ["grant.nonsense"])
    for bad in ("ftp://example.com/x", "http://", "http://user:pw@example.com/", "not a url"):
        _expect("webhook_url_refused", 422, _hook, p.dept, bad)
    _ask(p, 1)
    deliveries = p.dept.call("GET", f"/v1/webhooks/{hid}/deliveries")
    assert [d["status"] for d in deliveries["items"]] == ["pending"] and deliveries["total"] == 1
    p.dept.call("DELETE", f"/v1/webhooks/{hid}")
    _expect("webhook_not_found", 404, p.dept.call, "GET", f"/v1/webhooks/{hid}/deliveries")
    _expect("webhook_not_found", 404, p.dept.call, "DELETE", f"/v1/webhooks/{hid}")
    _ask(p, 1)
    assert WebhookDeliverer(p.vault.store).run_once() == 0  # a deleted webhook gets nothing
    assert receiver.log == []

    # production (or QCL_WEBHOOK_PRIVATE_URLS=false) refuses addresses that are not public
    monkeypatch.setattr(p.http.app.state.settings, "webhook_private_urls", False)  # type: ignore[attr-defined]
    _expect("webhook_url_refused", 422, _hook, p.dept, receiver.url)
    for url in ("http://10.0.0.8/x", "http://169.254.169.254/latest", "http://[::1]:81/", "https://localhost/"):
        with pytest.raises(UnsafeUrl):
            check_url(url, allow_private=False)
    assert check_url("https://93.184.216.34/hook", allow_private=False)
    for _ in range(MAX_WEBHOOKS):
        _hook(p.citizen, "https://93.184.216.34/hook")
    _expect("too_many_webhooks", 409, _hook, p.citizen, "https://93.184.216.34/hook")


def test_a_receiver_down_for_ten_minutes_gets_every_event_once_in_order(platform: Platform, receiver: Receiver) -> None:
    p = platform
    secret = _hook(p.dept, receiver.url)["secret"]
    hid = p.dept.call("GET", "/v1/webhooks")["items"][0]["webhook_id"]
    clock = [time.time()]
    deliverer = WebhookDeliverer(p.vault.store, clock=lambda: clock[0])
    try:
        receiver.up = False
        _ask(p, 5)
        down_since = clock[0]
        while clock[0] - down_since < 600:  # ten minutes down, events keep coming
            deliverer.run_once()
            clock[0] += 20
            if len(receiver.log) % 3 == 0:
                _ask(p, 1)
        while_down = list(receiver.log)
        assert while_down and all(r.event["sequence"] == 1 for r in while_down)  # n+1 waits for n
        first = p.dept.call("GET", f"/v1/webhooks/{hid}/deliveries", params={"limit": 1})["items"][0]
        assert first["status"] == "pending" and first["attempts"] == len(while_down)
        assert {a["status_code"] for a in first["attempt_log"]} == {503}
        tried = sorted(a["at"] - down_since for a in first["attempt_log"])
        assert all(b - a >= 1 for a, b in itertools.pairwise(tried))
        assert len(while_down) <= 12  # back-off: 1, 2, 4, … seconds, not every poll
        receiver.up = True
        for _ in range(200):  # back up: within the next back-off step everything arrives
            deliverer.run_once()
            if not p.dept.call("GET", f"/v1/webhooks/{hid}/deliveries", params={"status": "pending"})["total"]:
                break
            clock[0] += 30
        feed = _feed(p.dept)
        got = receiver.delivered()
        assert [e["id"] for e in got] == [e["id"] for e in feed]  # every event once, in sequence order
        assert [e["sequence"] for e in got] == list(range(1, len(feed) + 1))
        assert len(feed) >= 5 + 10
        for r in receiver.log:
            assert Webhook(secret).verify(r.body, r.headers)["id"] == r.headers["webhook-id"]
            assert r.headers["webhook-signature"].startswith("v1,")
        with pytest.raises(Exception, match=r"[Ss]ignature"):
            Webhook(secret).verify(receiver.log[-1].body + b" ", receiver.log[-1].headers)
        waited = clock[0] - down_since
        print(f"\n{len(feed)} events through a 10-minute outage: {len(while_down)} attempts of the first while down")
        print(
            f"attempts at +{', +'.join(f'{t:.0f}' for t in tried)} s; caught up {waited - 600:.0f} s after the return"
        )
    finally:
        deliverer.close()


def test_retries_go_on_for_24_hours_then_the_queue_moves_on(platform: Platform, receiver: Receiver) -> None:
    p = platform
    hid = _hook(p.dept, receiver.url)["webhook_id"]
    clock = [time.time()]
    deliverer = WebhookDeliverer(p.vault.store, clock=lambda: clock[0])
    try:
        receiver.up = False
        _ask(p, 2)
        start = clock[0]
        while clock[0] - start < 23.9 * 3600:
            deliverer.run_once()
            clock[0] += 600
        items = p.dept.call("GET", f"/v1/webhooks/{hid}/deliveries")["items"]
        assert [d["status"] for d in items] == ["pending", "pending"] and items[1]["attempts"] == 0
        clock[0] = start + 24 * 3600 + backoff(40)
        deliverer.run_once()
        items = p.dept.call("GET", f"/v1/webhooks/{hid}/deliveries")["items"]
        assert items[0]["status"] == "failed" and items[0]["attempts"] >= 20
        assert items[1]["status"] == "pending" and items[1]["attempts"] == 1  # the next one went at once
        receiver.up = True
        clock[0] += backoff(1)
        deliverer.run_once()
        items = p.dept.call("GET", f"/v1/webhooks/{hid}/deliveries")["items"]
        assert [d["status"] for d in items] == ["failed", "delivered"]
        assert [e["sequence"] for e in receiver.delivered()] == [2]
    finally:
        deliverer.close()


def test_a_revocation_reaches_a_live_receiver_within_5_seconds(platform: Platform, receiver: Receiver) -> None:
    """The real path: the index follower (every QCL_INDEX_INTERVAL = 2 s) turns the mined revocation
    into an event; the deliverer (polling every 0.25 s) sends it."""
    p = platform
    settings = p.http.app.state.settings  # type: ignore[attr-defined]
    follower = IndexFollower(p.http.app.state.indexer, interval=settings.index_interval)  # type: ignore[attr-defined]
    deliverer = WebhookDeliverer(p.vault.store, poll=settings.webhook_poll)
    _hook(p.dept, receiver.url, ["grant.revoked"])
    grant = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application")
    follower.start()
    deliverer.start()
    try:
        figures = []
        for attempt in range(3):
            if attempt:
                grant = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application")
            revoked = p.citizen.revoke(grant["grant_id"])  # answers once the block is mined
            mined = time.monotonic()
            with receiver.arrived:
                receiver.arrived.wait_for(
                    lambda g=grant: any(r.event["data"]["grant_id"] == g["grant_id"] for r in receiver.log), timeout=10
                )
            hit = next(r for r in receiver.log if r.event["data"]["grant_id"] == grant["grant_id"])
            assert hit.event["type"] == "grant.revoked" and hit.event["block_number"] == revoked["block_number"]
            figures.append(hit.at - mined)
        print(f"\nrevocation mined -> at the receiver: {', '.join(f'{s:.2f} s' for s in figures)}")
        assert max(figures) < 5.0
    finally:
        deliverer.close()
        follower.stop()
