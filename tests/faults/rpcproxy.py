"""A misbehaving chain node for tests: a JSON-RPC proxy in front of a real node (anvil) that does
what consortium nodes do (issue 16): loses a transaction it said it accepted, answers slowly,
fails calls with an internal error, refuses batches of more than 50 calls, and hides receipts for
a while."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from eth_utils import keccak

from chain_client import free_port


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many calls in flight (the default backlog, 5, refuses bursts)
    daemon_threads = True


class RpcProxy:
    """``url`` forwards to ``upstream``; set the faults' attributes at any time."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        #: raw transactions to answer "accepted" (their hash) and never forward
        self.drop_transactions = 0
        #: seconds added to every answer
        self.delay = 0.0
        #: method -> how many of its next calls fail with a JSON-RPC internal error
        self.fail: Counter[str] = Counter()
        #: largest batch accepted (Besu's default rpc-max-batch-size)
        self.batch_limit = 50
        #: seconds a receipt stays hidden (null) after its transaction was sent
        self.receipt_delay = 0.0
        self.dropped: list[str] = []
        self.calls: Counter[str] = Counter()
        self.batches: list[int] = []
        self._sent_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                answer = proxy._handle(body)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, body: Any) -> Any:
        if self.delay:
            time.sleep(self.delay)
        if isinstance(body, list):
            self.batches.append(len(body))
            if len(body) > self.batch_limit:
                return {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "batch size limit exceeded"}}
            return [self._one(call) for call in body]
        return self._one(body)

    def _one(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params, ident = call.get("method", ""), call.get("params") or [], call.get("id")
        with self._lock:
            self.calls[method] += 1
            if self.fail[method] > 0:
                self.fail[method] -= 1
                return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32603, "message": "Internal error"}}
            if method == "eth_sendRawTransaction":
                tx_hash = "0x" + keccak(bytes.fromhex(params[0][2:])).hex()
                self._sent_at.setdefault(tx_hash, time.monotonic())
                if self.drop_transactions > 0:
                    self.drop_transactions -= 1
                    self.dropped.append(tx_hash)
                    return {"jsonrpc": "2.0", "id": ident, "result": tx_hash}
            if method == "eth_getTransactionReceipt" and self.receipt_delay:
                sent = self._sent_at.get(str(params[0]).lower())
                if sent is not None and time.monotonic() - sent < self.receipt_delay:
                    return {"jsonrpc": "2.0", "id": ident, "result": None}
        response = self._session.post(self.upstream, json=call, timeout=30)
        return dict(response.json())
