"""Shared fixtures: compiled contracts, local nodes of every kind, fresh deployments."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_client import CompilationResult, Ledger, Node, compile_contracts, deploy, start_node
from chain_client._revert import RevertDecoder
from chain_client._tx import Transactor
from db.scratch import create_database, drop_database

NODE_KINDS = ["anvil", "hardhat", "ganache", "eth-tester"]

#: The PostgreSQL server the suites use (trust auth; the database ``test`` exists). A suite that
#: needs it FAILS without it: the SQLite runs do not cover PostgreSQL's locking and types.
PG_ADMIN_URL = os.environ.get("QCL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def create_pg_database(prefix: str) -> str:
    """A new, empty PostgreSQL database named ``<prefix>_<random>``; its URL. ``pytest.fail`` without a server."""
    try:
        return create_database(PG_ADMIN_URL, prefix)
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the test cannot run
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is needed (set QCL_TEST_POSTGRES to another server): {exc}")


def drop_pg_database(url: str) -> None:
    drop_database(PG_ADMIN_URL, url)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the module (dropped afterwards); its URL."""
    url = create_pg_database("qcl_test")
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def compiled() -> CompilationResult:
    return compile_contracts()


@pytest.fixture(scope="session", params=NODE_KINDS)
def any_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """Each local node kind in turn (tests using it are marked ``nodes``)."""
    node = start_node(request.param, log_dir=tmp_path_factory.mktemp(f"{request.param}-logs"))
    yield node
    node.stop()


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    node = start_node("anvil", log_dir=tmp_path_factory.mktemp("anvil-logs"))
    yield node
    node.stop()


@dataclass
class Deployed:
    node: Node
    ledger: Ledger
    admin: LocalAccount
    #: The first AUDITOR, named by the deployment (SPEC §9.8: later ones need an auditor's signature).
    auditor: LocalAccount

    def transactor_for(self, account: LocalAccount) -> Transactor:
        self.node.fund(account.address)
        return Transactor(w3=self.node.w3, account=account, decoder=self.ledger.decoder)

    def ledger_as(self, account: LocalAccount, compiled: CompilationResult) -> Ledger:
        """The same deployment seen by another signer."""
        self.node.fund(account.address)
        return Ledger(w3=self.node.w3, deployment=self.ledger.deployment, compiled=compiled, operator=account)


def deploy_fresh(node: Node, compiled: CompilationResult) -> Deployed:
    admin, auditor = Account.create(), Account.create()
    node.fund(admin.address)
    transactor = Transactor(
        w3=node.w3, account=admin, decoder=RevertDecoder([c.abi for c in compiled.contracts.values()])
    )
    deployment = deploy(transactor, compiled, admin=admin.address, auditors=[auditor.address])
    return Deployed(
        node=node,
        ledger=Ledger(w3=node.w3, deployment=deployment, compiled=compiled, operator=admin),
        admin=admin,
        auditor=auditor,
    )


@pytest.fixture
def deployed_any(any_node: Node, compiled: CompilationResult) -> Deployed:
    """A fresh deployment on each node kind."""
    return deploy_fresh(any_node, compiled)


@pytest.fixture
def deployed(anvil: Node, compiled: CompilationResult) -> Deployed:
    """A fresh deployment on anvil."""
    return deploy_fresh(anvil, compiled)


@pytest.fixture
def deployed_alone(compiled: CompilationResult, tmp_path: Path) -> Iterator[Deployed]:
    """A fresh deployment on an anvil of the test's own, for tests that move the chain's clock
    (``evm_increaseTime``, ``evm_setNextBlockTimestamp``): on the shared anvil that would expire
    the grants and deadlines of whichever tests run after them, in whatever order."""
    node = start_node("anvil", log_dir=tmp_path / "anvil-logs")
    yield deploy_fresh(node, compiled)
    node.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "any_node" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nodes)


@pytest.fixture(scope="module")
def deployed_shared(anvil: Node, compiled: CompilationResult) -> Deployed:
    """One deployment on anvil shared by a module's tests (for read-only and Hypothesis tests)."""
    return deploy_fresh(anvil, compiled)
