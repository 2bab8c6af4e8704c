"""Starting ``qcl`` processes against a chain of the test's own (shared by the fault tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account import Account

from chain_client import Node, free_port

ROOT = Path(__file__).resolve().parents[2]
QCL = str(ROOT / ".venv" / "bin" / "qcl")


def dev_env(data: Path, chain: str, *, database: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``qcl`` process with its own data directory and API port."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QCL_ENV": "dev",
        "QCL_CHAIN": chain,
        "QCL_DATA_DIR": str(data),
        "QCL_API_PORT": str(port),
        "QCL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "QCL_CHECKPOINT_INTERVAL": "1",
        "QCL_INDEX_INTERVAL": "0.5",
        **extra,
    }
    if database:
        env["QCL_DATABASE_URL"] = database
    return env


def fund_accounts(node: Node, data: Path) -> dict[str, Account]:
    """The dev accounts file of ``data``, every account funded on ``node``."""
    data.mkdir(parents=True, exist_ok=True)
    keys = {name: Account.create() for name in ("admin", "relayer", "releaser", "auditor")}
    body = {n: {"address": a.address, "private_key": a.key.to_0x_hex()} for n, a in keys.items()}
    (data / "accounts.json").write_text(json.dumps(body))
    for account in keys.values():
        node.fund(account.address)
    return keys


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([QCL, *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=log.parent)


def wait_for(
    check: Callable[[], bool], what: str, timeout: float = 150.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (code {proc.returncode}) while waiting for {what}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop_in(proc: subprocess.Popen[bytes], sig: int, timeout: float = 30.0) -> float:
    """Send ``sig``; seconds until the process exited (it is killed after ``timeout``)."""
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return float("inf")
    return time.monotonic() - start


def end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
