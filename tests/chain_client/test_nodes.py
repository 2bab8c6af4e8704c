"""Starting and stopping local nodes; connecting to URLs; deployment reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from chain_client import (
    ChainUnavailable,
    CompilationResult,
    Deployment,
    DeploymentMismatch,
    Node,
    check_deployment,
    connect,
    ensure_deployment,
    free_port,
    start_node,
)
from chain_client._revert import RevertDecoder
from chain_client._tx import Transactor
from chain_client.nodes import port_in_use


@pytest.mark.parametrize("kind", ["anvil", "hardhat", "ganache"])
def test_node_starts_on_the_port_and_frees_it(kind: str, tmp_path: Path) -> None:
    port = free_port()
    node = start_node(kind, port=port, log_dir=tmp_path)
    try:
        assert node.url == f"http://127.0.0.1:{port}"
        assert port_in_use(port)
        assert node.chain_id > 0
    finally:
        node.stop()
    assert not port_in_use(port)
    assert node.process is not None and node.process.poll() is not None
    node.stop()  # idempotent


def test_busy_port_is_a_clear_error(anvil: Node, tmp_path: Path) -> None:
    assert anvil.url is not None
    port = int(anvil.url.rsplit(":", 1)[1])
    with pytest.raises(ChainUnavailable, match="already in use"):
        start_node("anvil", port=port, log_dir=tmp_path)


def test_unknown_kind_and_bad_url() -> None:
    with pytest.raises(ValueError, match="unknown node kind"):
        start_node("geth-unknown")
    with pytest.raises(ValueError, match="http"):
        connect("ftp://127.0.0.1:1")


def test_silent_url_is_chain_unavailable() -> None:
    port = free_port()
    with pytest.raises(ChainUnavailable, match=f"127.0.0.1:{port} does not answer"):
        connect(f"http://127.0.0.1:{port}", timeout=2)


def test_connect_recognises_a_local_node(anvil: Node) -> None:
    assert anvil.url is not None
    other = connect(anvil.url)
    assert other.kind == "anvil" and other.chain_id == anvil.chain_id


def test_deployment_is_reused_only_when_it_matches(anvil: Node, compiled: CompilationResult, tmp_path: Path) -> None:
    admin = Account.create()
    anvil.fund(admin.address)
    transactor = Transactor(
        w3=anvil.w3, account=admin, decoder=RevertDecoder([c.abi for c in compiled.contracts.values()])
    )
    manifest = tmp_path / "deployment.json"
    first, reused = ensure_deployment(transactor, compiled, admin=admin.address, manifest=manifest)
    assert not reused and manifest.is_file()
    saved = Deployment.from_json(manifest.read_text())
    assert saved == first and saved.chain_id == anvil.chain_id and saved.source_hash == compiled.source_hash
    again, reused = ensure_deployment(transactor, compiled, admin=admin.address, manifest=manifest)
    assert reused and again == first

    wrong_chain = Deployment(**{**first.__dict__, "chain_id": first.chain_id + 1})
    with pytest.raises(DeploymentMismatch, match="chain"):
        check_deployment(anvil.w3, wrong_chain, compiled)
    no_code = Deployment(**{**first.__dict__, "contracts": {**first.contracts, "ConsentLedger": admin.address}})
    with pytest.raises(DeploymentMismatch, match="not the deployed code"):
        check_deployment(anvil.w3, no_code, compiled)
    no_code.write(manifest)
    fresh, reused = ensure_deployment(transactor, compiled, admin=admin.address, manifest=manifest)
    assert not reused and fresh.contracts != first.contracts
    assert Deployment.from_json(manifest.read_text()) == fresh
