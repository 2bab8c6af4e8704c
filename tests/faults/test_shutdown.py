"""Every way of stopping a process finishes within a few seconds, whatever is down (issue 16):
``qcl dev``, ``qcl serve`` and ``qcl worker`` against a chain node that was killed or that hangs
(SIGSTOP: connections accepted, nothing answered), with requests still waiting on it."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from chain_client import start_node
from tests.faults._procs import dev_env, end, fund_accounts, healthy, spawn, stop_in, wait_for

#: What "a few seconds" means here (the processes give requests and loops 2 s, QCL_SHUTDOWN_TIMEOUT).
LIMIT = 5.0


def _in_flight(url: str, n: int = 8) -> list[threading.Thread]:
    """Requests that wait on the chain (GET /health reads the head block) while the process stops."""

    def call() -> None:
        try:
            httpx.get(url + "/health", timeout=30)
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=call, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


@pytest.mark.parametrize(
    ("command", "fault", "sig"),
    [
        (["dev"], "hung", signal.SIGINT),
        (["serve"], "killed", signal.SIGINT),
        (["worker"], "hung", signal.SIGTERM),
    ],
    ids=["dev-hung-SIGINT", "serve-killed-SIGINT", "worker-hung-SIGTERM"],
)
def test_stops_within_seconds_with_the_chain_down(command: list[str], fault: str, sig: int, tmp_path: Path) -> None:
    node = start_node("anvil", log_dir=tmp_path / "anvil")
    assert node.process is not None
    proc = None
    try:
        fund_accounts(node, tmp_path / "data")
        env = dev_env(tmp_path / "data", str(node.url), QCL_RPC_TIMEOUT="10")
        url = env["QCL_PUBLIC_URL"]
        proc = spawn(command, env, tmp_path / "qcl.log")
        if command == ["worker"]:
            wait_for(lambda: "worker active" in (tmp_path / "qcl.log").read_text(), "the worker", proc=proc)
        else:
            wait_for(lambda: healthy(url), "the API", proc=proc)
        os.killpg(node.process.pid, signal.SIGSTOP if fault == "hung" else signal.SIGKILL)
        if command != ["worker"]:
            _in_flight(url)
        threading.Event().wait(1.5)  # the requests and the background loops now wait on the chain
        assert proc.poll() is None
        took = stop_in(proc, sig)
        log = (tmp_path / "qcl.log").read_text()
        assert took < LIMIT, f"{' '.join(command)} took {took:.1f} s to stop:\n{log[-3000:]}"
        # requests cut at the end of the grace period are uvicorn's own report, nothing else may fail
        cut = log.count("CancelledError: Task cancelled, timeout graceful shutdown exceeded")
        assert log.count("Traceback") == cut, log[-3000:]
    finally:
        if proc is not None:
            end(proc)
        if node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGCONT)
        node.stop()
