"""The worker's side of notifications (SPEC §9.1): webhook delivery and the deadline clocks.

:class:`WebhookDeliverer` sends each pending delivery per the Standard Webhooks specification
(``webhook-id`` = the event's id, ``webhook-timestamp``, ``webhook-signature: v1,<base64
HMAC-SHA256>`` signed by the ``standardwebhooks`` package; body = the event). Per webhook, strictly
in ``sequence`` order: the next delivery waits until the one before succeeded (or was given up).
A non-2xx answer, a timeout or a refused connection is retried with exponential back-off (1 s,
2 s, 4 s, … capped at one hour) for at least ``retry_period`` (24 h) after the first attempt; then
the delivery is ``failed`` and the next one goes (the receiver catches up from ``GET
/v1/events?after=``). Every attempt is stored. At least once: a crash after the receiver's 2xx
and before the database write sends it again, so receivers de-duplicate by ``id``.

:class:`EventClocks` turns passed deadlines into events every ``interval`` seconds
(:func:`db.events.fire_due`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, func, select
from standardwebhooks import Webhook

from db import events as member_events
from db.models import EventRow, WebhookAttempt, WebhookDelivery, WebhookRow
from db.store import Store

log = logging.getLogger("qcl.notifications")

#: Retries go on for at least this long after a delivery's first attempt (SPEC §9.1: 24 hours).
RETRY_PERIOD = 24 * 3600.0
#: The longest wait between two attempts.
MAX_BACKOFF = 3600.0


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 1, 2, 4, … capped at an hour."""
    return float(min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1)))


class UnsafeUrl(ValueError):
    """A webhook URL this deployment will not call."""


def private_address(host: str) -> bool:
    """Whether ``host`` (a name or an IP literal) resolves to any address that is not public:
    loopback, private (RFC 1918, fc00::/7), link-local (169.254/16: cloud metadata), multicast,
    reserved or unspecified. A name that does not resolve counts as private (refused)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return True
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return True
    return False


def check_url(url: str, *, allow_private: bool) -> str:
    """The webhook URL if this deployment may call it; :class:`UnsafeUrl` says why not."""
    if len(url) > 2000:
        raise UnsafeUrl("the URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL must be http:// or https://")
    if not parts.hostname:
        raise UnsafeUrl("the URL names no host")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL must not carry credentials")
    if port == 0:
        raise UnsafeUrl("port 0 is not a port")
    if not allow_private and private_address(parts.hostname):
        raise UnsafeUrl("the URL's host is not a public address (loopback, private, link-local or unresolvable)")
    return url


class WebhookDeliverer:
    """Delivers pending webhook deliveries (one thread polling, a small pool sending).

    ``clock`` decides when an attempt is due (tests move it to simulate hours); the signature's
    timestamp is always the real time. :meth:`run_once` delivers everything due now in the
    calling thread (what tests drive).
    """

    def __init__(
        self,
        store: Store,
        *,
        poll: float = 0.25,
        timeout: float = 5.0,
        allow_private: bool = True,
        parallel: int = 8,
        retry_period: float = RETRY_PERIOD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.poll = poll
        self.allow_private = allow_private
        self.retry_period = retry_period
        self.clock = clock
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            follow_redirects=False,
            headers={"user-agent": "quanchenglian-webhooks/1"},
        )
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="qcl-webhook")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="qcl-webhooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (an event was just emitted in this process)."""
        self._wake.set()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop polling; sends in flight end within the HTTP timeout (their outcome is stored)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self, timeout: float = 3.0) -> None:
        self.stop(timeout)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for hook_id in self.due():
                    with self._lock:
                        if hook_id in self._busy:
                            continue
                        self._busy.add(hook_id)
                    self._pool.submit(self._drain_released, hook_id)
            except Exception:  # the thread must survive a database hiccup
                log.exception("webhook deliverer failed")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _drain_released(self, hook_id: str) -> None:
        try:
            self.drain(hook_id)
        except Exception:
            log.exception("webhook %s: delivery failed", hook_id)
        finally:
            with self._lock:
                self._busy.discard(hook_id)

    # ---- the work --------------------------------------------------------------------------------

    def due(self) -> list[str]:
        """Webhooks whose next delivery in sequence order is due now."""
        head = (
            select(WebhookDelivery.webhook_id, func.min(WebhookDelivery.sequence).label("sequence"))
            .where(WebhookDelivery.status == "pending")
            .group_by(WebhookDelivery.webhook_id)
            .subquery()
        )
        stmt = (
            select(WebhookDelivery.webhook_id)
            .join(
                head,
                and_(WebhookDelivery.webhook_id == head.c.webhook_id, WebhookDelivery.sequence == head.c.sequence),
            )
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= self.clock())
        )
        with self.store.session() as s:
            return list(s.scalars(stmt).all())

    def run_once(self) -> int:
        """Deliver, in this thread, everything due now; returns the attempts made."""
        return sum(self.drain(hook_id) for hook_id in self.due())

    def drain(self, hook_id: str, *, at_most: int = 200) -> int:
        """Send this webhook's due deliveries in sequence order until one fails or none is due."""
        attempts = 0
        while attempts < at_most and not self._stop.is_set():
            with self.store.session() as s:
                hook = s.get(WebhookRow, hook_id)
                if hook is None or hook.deleted_at is not None:
                    return attempts
                delivery = s.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.webhook_id == hook_id, WebhookDelivery.status == "pending")
                    .order_by(WebhookDelivery.sequence)
                    .limit(1)
                ).first()
                if delivery is None or delivery.next_attempt_at > self.clock():
                    return attempts
                event = s.get(EventRow, delivery.event_id)
                url, secret, delivery_id = hook.url, hook.secret, delivery.id
                body = json.dumps(member_events.public(event), separators=(",", ":")) if event else None
            attempts += 1
            if body is None:  # cannot happen while events are never deleted; do not block the queue
                self._record(delivery_id, None, "event missing", 0.0, give_up=True)
                continue
            assert event is not None
            status, error, elapsed = self._send(url, secret, event.id, body)
            if not self._record(delivery_id, status, error, elapsed):
                return attempts
        return attempts

    def _send(self, url: str, secret: str, message_id: str, body: str) -> tuple[int | None, str | None, float]:
        started = time.perf_counter()
        try:
            if not self.allow_private:
                host = urlsplit(url).hostname or ""
                if private_address(host):  # checked again at each send (DNS may have changed)
                    return None, "refused: the host resolves to a non-public address", 0.0
            now = datetime.now(tz=UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(secret).sign(message_id, now, body),
            }
            response = self._http.post(url, content=body.encode(), headers=headers)
            return response.status_code, None, (time.perf_counter() - started) * 1000
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500], (time.perf_counter() - started) * 1000

    def _record(
        self, delivery_id: int, status: int | None, error: str | None, elapsed: float, *, give_up: bool = False
    ) -> bool:
        """Store the attempt and the delivery's new state; True when it was delivered."""
        now = self.clock()
        ok = status is not None and 200 <= status < 300
        with self.store.session() as s:
            delivery = s.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None or delivery.status != "pending":  # cancelled meanwhile (webhook deleted)
                return False
            s.add(WebhookAttempt(delivery_id=delivery_id, at=now, status_code=status, error=error, duration_ms=elapsed))
            delivery.attempts += 1
            delivery.first_attempt_at = delivery.first_attempt_at or now
            delivery.last_attempt_at, delivery.last_status = now, status
            delivery.last_error = error if not ok else None
            if ok:
                delivery.status, delivery.delivered_at = "delivered", now
            elif give_up or now - delivery.first_attempt_at >= self.retry_period:
                delivery.status = "failed"
                return True  # the queue moves on; the receiver catches up from GET /v1/events
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
        return ok


class EventClocks:
    """Fires passed deadlines as events (:func:`db.events.fire_due`) every ``interval`` seconds:
    the ledger's windows (grant and emergency expiry) on ``chain_clock``, the chain's time as
    indexed (:func:`db.events.indexed_time`), the service clocks on ``clock``, the wall clock."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        chain_clock: Callable[[], int | None] | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self.chain_clock = chain_clock or (lambda: member_events.indexed_time(store))
        self.fired = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="qcl-clocks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def step(self) -> int:
        fired = member_events.fire_due(self.store, int(self.clock()), chain_now=self.chain_clock() or 0)
        self.fired += fired
        return fired

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("event clocks failed")
            self._stop.wait(self.interval)
