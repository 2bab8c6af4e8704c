"""Local chains for development and tests, and the connection to any other one.

``QCL_CHAIN`` (or the ``chain`` argument) picks one of:

* ``anvil`` (the default): the anvil binary shipped by the npm package ``@foundry-rs/anvil``;
* ``hardhat``: ``hardhat node`` of Hardhat 3 (run by the npm ``node@22`` package);
* ``ganache``: the npm ``ganache`` 7.9 CLI;
* ``eth-tester``: py-evm in this process (no node at all; slow, but nothing to start);
* an ``http(s)://`` URL of any EVM JSON-RPC endpoint (e.g. a Besu QBFT network).

Local nodes start as subprocesses in their own process group, on a free port unless one is given,
and :meth:`Node.stop` ends the whole group. A node also dies with its parent however that ends
(a crash, ``kill -9``): on Linux the kernel sends it ``SIGTERM`` when the starting thread exits
(``PR_SET_PDEATHSIG``). Each node's pid is kept in ``<log_dir>/<kind>-<port>.pid``; a node of
ours still holding the port from an earlier crash is recognised by it and replaced.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.providers import EthereumTesterProvider, HTTPProvider
from web3.types import RPCEndpoint, Wei

from .._paths import node_binary, node_modules, npm_package, project_root
from ..errors import ChainUnavailable, ToolMissing

log = logging.getLogger("qcl.nodes")

LOCAL_KINDS = ("anvil", "hardhat", "ganache", "eth-tester")
_READY_TIMEOUT = 90.0
#: Ether given to the operator and relayer accounts on local chains.
DEV_BALANCE_WEI = 10_000 * 10**18


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class Node:
    """A chain this process talks to; ``process`` is set when we started it."""

    kind: str
    url: str | None
    w3: Web3
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: The command that started it (to start it again after it died: :meth:`supervise`).
    command: list[str] | None = None
    #: How many times :meth:`supervise` started it again.
    restarts: int = 0
    _stopped: bool = field(default=False, repr=False)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)
    _watch: threading.Thread | None = field(default=None, repr=False)

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def fund(self, address: str, wei: int = DEV_BALANCE_WEI) -> None:
        """Give ``address`` a balance on a local chain (no-op on remote chains)."""
        hexwei = hex(wei)
        if self.kind == "anvil":
            self.w3.provider.make_request("anvil_setBalance", [address, hexwei])  # type: ignore[arg-type]
        elif self.kind == "hardhat":
            self.w3.provider.make_request("hardhat_setBalance", [address, hexwei])  # type: ignore[arg-type]
        elif self.kind == "ganache":
            self.w3.provider.make_request("evm_setAccountBalance", [address, hexwei])  # type: ignore[arg-type]
        elif self.kind == "eth-tester":
            faucet = self.w3.eth.accounts[0]
            tx = self.w3.eth.send_transaction({"from": faucet, "to": address, "value": Wei(wei)})
            self.w3.eth.wait_for_transaction_receipt(tx)

    def restart(self, ready_timeout: float = _READY_TIMEOUT) -> None:
        """Start our node again with the same command: the same port and state file (anvil loads
        what it last wrote there). Raises :class:`ChainUnavailable` when it does not come up."""
        if self.command is None or self.log_path is None:
            raise ChainUnavailable(f"this {self.kind} node was not started here; it cannot be restarted")
        with open(self.log_path, "ab") as out:
            proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=project_root(),
                start_new_session=True,
                preexec_fn=_die_with_parent(any_thread=True),
            )
        self.process = proc
        self.log_path.with_suffix(".pid").write_text(f"{proc.pid}\n")
        _wait_ready(self, ready_timeout)

    def supervise(self, *, interval: float = 0.5, on_restart: Callable[[Node], None] | None = None) -> None:
        """Watch the node we started and start it again whenever it dies (``qcl dev``), until
        :meth:`stop`. Meanwhile every call fails fast (connection refused: 503 at the API)."""
        if self.process is None or self._watch is not None:
            return

        def watch() -> None:
            delay = interval
            while not self._stopped:
                proc = self.process
                if proc is not None and proc.poll() is not None and not self._stopped:
                    log.warning(
                        "%s (pid %d) exited with code %s; starting it again", self.kind, proc.pid, proc.returncode
                    )
                    try:
                        self.restart()
                    except Exception as exc:  # noqa: BLE001 - keep trying, a little slower each time
                        log.error("%s did not come back: %s", self.kind, exc)
                        delay = min(delay * 2, 5.0)
                    else:
                        self.restarts += 1
                        delay = interval
                        log.warning("%s answers again (restart %d)", self.kind, self.restarts)
                        if on_restart is not None:
                            on_restart(self)
                self._ended.wait(delay)
            # the node's PR_SET_PDEATHSIG follows the thread that started it: outlive its stop
            self._ended.wait()

        self._watch = threading.Thread(target=watch, name=f"qcl-{self.kind}-watch", daemon=True)
        self._watch.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the node we started (its whole process group); idempotent."""
        if self.process is None or self._stopped:
            return
        self._stopped = True
        try:
            self._stop_process(timeout)
        finally:
            self._ended.set()

    def _stop_process(self, timeout: float) -> None:
        proc = self.process
        assert proc is not None
        if self.log_path is not None:
            self.log_path.with_suffix(".pid").unlink(missing_ok=True)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)  # anvil dumps its --state on SIGINT
                proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=timeout)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _anvil_binary() -> str:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    exe = node_modules() / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / "anvil"
    if exe.is_file():
        return str(exe)
    npm_package("@foundry-rs/anvil")
    raise ToolMissing("anvil", f"no anvil binary for {system}-{machine} under {exe.parent}: run `make install`.")


def _node22() -> str:
    exe = node_modules() / "node" / "bin" / "node"
    if not exe.is_file():
        raise ToolMissing("node@22", "Hardhat 3 runs on the npm package node@22: run `make install`.")
    return str(exe)


def _command(
    kind: str, host: str, port: int, chain_id: int | None, state_path: Path | None, state_interval: int | None = None
) -> list[str]:
    if kind == "anvil":
        # --max-persisted-states 0: anvil otherwise spills old states to ~/.foundry/anvil/tmp and
        # leaves them there (gigabytes over a test run); recent states stay in memory.
        cmd = [
            _anvil_binary(),
            "--host",
            host,
            "--port",
            str(port),
            "--hardfork",
            "shanghai",
            "--max-persisted-states",
            "0",
        ]
        if chain_id is not None:
            cmd += ["--chain-id", str(chain_id)]
        if state_path is not None:
            cmd += ["--state", str(state_path)]
            if state_interval:
                cmd += ["--state-interval", str(state_interval)]
        return cmd
    if kind == "hardhat":
        cli = npm_package("hardhat") / "dist" / "src" / "cli.js"
        return [_node22(), str(cli), "node", "--hostname", host, "--port", str(port)]
    if kind == "ganache":
        cli = npm_package("ganache") / "dist" / "node" / "cli.js"
        cmd = [node_binary(), str(cli), "--server.host", host, "--server.port", str(port)]
        cmd += ["--chain.hardfork", "shanghai", "--logging.quiet", "--wallet.totalAccounts", "1"]
        if chain_id is not None:
            cmd += ["--chain.chainId", str(chain_id)]
        return cmd
    raise ValueError(f"unknown node kind {kind!r}; expected one of {', '.join(LOCAL_KINDS)} or a URL")


#: Seconds one JSON-RPC call may take before the chain counts as unavailable (a hung node must not
#: hold a request, a background loop or a shutdown for long).
RPC_TIMEOUT = 10.0


def _http_w3(url: str, timeout: float = RPC_TIMEOUT) -> Web3:
    # the chain id never changes: web3 validates every contract call with it, so ask once
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
    )
    return Web3(provider)


def start_node(
    kind: str = "anvil",
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    chain_id: int | None = None,
    state_path: Path | None = None,
    log_dir: Path | None = None,
    ready_timeout: float = _READY_TIMEOUT,
    rpc_timeout: float = RPC_TIMEOUT,
    state_interval: int | None = None,
) -> Node:
    """Start a local chain of ``kind`` and wait until it answers JSON-RPC.

    ``port`` defaults to a free one. ``state_path`` (anvil only) keeps the chain between runs;
    with ``state_interval`` anvil also writes it every that many seconds (not only on a clean
    exit), so a node killed with SIGKILL comes back at most that far behind.
    Raises :class:`ChainUnavailable` with the node's own output when it does not come up.
    """
    if kind == "eth-tester":
        w3 = Web3(EthereumTesterProvider())
        return Node(kind=kind, url=None, w3=w3)
    if kind not in LOCAL_KINDS:
        raise ValueError(f"unknown node kind {kind!r}; expected one of {', '.join(LOCAL_KINDS)} or a URL")
    log_dir = log_dir or Path(os.environ.get("QCL_LOG_DIR", project_root() / "build" / "logs"))
    log_dir.mkdir(parents=True, exist_ok=True)
    if port is not None and port_in_use(port, host):
        if not _stop_stale(log_dir / f"{kind}-{port}.pid", kind) or not _port_freed(port, host):
            raise ChainUnavailable(f"cannot start {kind}: {host}:{port} is already in use")
    port = port or free_port(host)
    cmd = _command(kind, host, port, chain_id, state_path, state_interval)
    log_path = log_dir / f"{kind}-{port}.log"
    pid_path = log_dir / f"{kind}-{port}.pid"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=project_root(),
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    pid_path.write_text(f"{proc.pid}\n")
    url = f"http://{host}:{port}"
    node = Node(kind=kind, url=url, w3=_http_w3(url, rpc_timeout), process=proc, log_path=log_path, command=cmd)
    try:
        _wait_ready(node, ready_timeout)
    except BaseException:
        node.stop()
        raise
    return node


_PR_SET_PDEATHSIG = 1


def _die_with_parent(*, any_thread: bool = False) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent thread ends.

    Linux only, and only from the main thread unless ``any_thread`` (a thread that outlives the
    child, as :meth:`Node.supervise`'s does): the signal follows the *thread* that started the
    child, so a node started by a short-lived worker thread would otherwise die with that thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    if not any_thread and threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _stop_stale(pid_path: Path, kind: str) -> bool:
    """Stop the node an earlier (crashed) run of ours left on the port; False if it is not ours."""
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return False
    if not _is_node_process(pid, kind):
        return False
    for sig in (signal.SIGINT, signal.SIGKILL):  # SIGINT first: anvil dumps its --state
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            return False
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            break
    pid_path.unlink(missing_ok=True)
    return True


def _is_node_process(pid: int, kind: str) -> bool:
    """Whether ``pid`` runs a node of ``kind`` (its command line names it), leading its own group."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if os.getpgid(pid) != pid:
            return False
    except (OSError, ProcessLookupError):
        return False
    marker = {"anvil": "anvil", "hardhat": "hardhat", "ganache": "ganache"}.get(kind, kind)
    return marker in cmdline


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (ended, not yet reaped by its old parent) no longer holds the port
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _port_freed(port: int, host: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_in_use(port, host):
            return True
        time.sleep(0.05)
    return False


def _wait_ready(node: Node, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert node.process is not None
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise ChainUnavailable(f"{node.kind} exited with code {node.process.returncode}: {_tail(node.log_path)}")
        try:
            _ = node.w3.eth.chain_id
            return
        except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
            time.sleep(0.1)
    raise ChainUnavailable(f"{node.kind} did not answer at {node.url} within {timeout:.0f}s: {_tail(node.log_path)}")


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.is_file():
        return "(no output)"
    text = path.read_text(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


def connect(url: str, *, timeout: float = RPC_TIMEOUT) -> Node:
    """Connect to an existing JSON-RPC endpoint; :class:`ChainUnavailable` if it does not answer."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"chain URL must start with http:// or https://, got {url!r}")
    w3 = _http_w3(url, timeout)
    try:
        _ = w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 - connection, HTTP and JSON errors alike
        raise ChainUnavailable(f"the chain at {url} does not answer: {exc.__class__.__name__}: {exc}") from None
    return Node(kind=_probe_kind(w3), url=url, w3=w3)


def _probe_kind(w3: Web3) -> str:
    """Recognise a local dev node behind a URL (so funding works on it), else "remote"."""
    try:
        version = str(w3.client_version).lower()
    except Exception:  # noqa: BLE001
        return "remote"
    for kind in ("anvil", "hardhat", "ganache"):
        if kind in version:
            return kind
    return "remote"


def open_chain(spec: str, **kwargs: Any) -> Node:
    """Start or connect to the chain named by ``spec`` (a kind or a URL)."""
    if spec.startswith(("http://", "https://")):
        return connect(spec, timeout=kwargs.get("rpc_timeout", RPC_TIMEOUT))
    return start_node(spec, **kwargs)
