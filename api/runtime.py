"""Bring a deployment up: compile, start or connect to the chain, deploy or reuse, build the Ledger."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain_client import (
    ChainUnavailable,
    Ledger,
    Node,
    compile_contracts,
    connect,
    ensure_deployment,
    start_node,
)
from chain_client._revert import RevertDecoder
from chain_client._tx import Transactor
from chain_client.relayer import RawSender
from db.nonces import SharedNonces
from db.store import Store
from vault import FileKeyRing, Vault
from vault.releases import ReleaseRelayer

from .settings import Settings

Say = Callable[[str], None]


@dataclass(frozen=True)
class DevAccounts:
    admin: LocalAccount
    relayer: LocalAccount
    #: The dev deployment's first AUDITOR (SPEC §9.8); None when the keys come from settings.
    auditor: LocalAccount | None = None


_DEV_ROLES = ("admin", "relayer", "auditor")


def dev_accounts(path: Path) -> DevAccounts:
    """Load the dev ADMIN, relayer and AUDITOR keys (SPEC §8, §9.8), creating the missing ones on
    first use (mode 0600). The auditor is named by the deployment as its first AUDITOR, since an
    ADMIN alone can never enrol one."""
    data: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.is_file() else {}
    accounts = {
        name: Account.from_key(data[name]["private_key"]) if name in data else Account.create() for name in _DEV_ROLES
    }
    if any(name not in data for name in _DEV_ROLES):
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            **data,
            **{name: {"address": a.address, "private_key": a.key.to_0x_hex()} for name, a in accounts.items()},
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh, indent=2)
            fh.write("\n")
    return DevAccounts(admin=accounts["admin"], relayer=accounts["relayer"], auditor=accounts["auditor"])


def first_auditors(settings: Settings, accounts: DevAccounts) -> list[str]:
    """The AUDITORs a new deployment names: ``settings.first_auditors``, else the dev auditor."""
    if settings.first_auditors:
        return list(settings.first_auditors)
    return [accounts.auditor.address] if accounts.auditor is not None else []


def dev_account(path: Path, name: str) -> LocalAccount:
    """One more named dev key in the accounts file (created on first use, the file kept at 0600)."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    if name in data:
        return Account.from_key(data[name]["private_key"])
    account = Account.create()
    data[name] = {"address": account.address, "private_key": account.key.to_0x_hex()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    return account


def release_account(settings: Settings) -> LocalAccount:
    """The account the release relayer sends grouped releases with: ``QCL_RELEASE_KEY``, else the
    dev key ``"releaser"`` of the accounts file. Its own account, so that the worker's nonces never
    collide with those of API processes relaying grants."""
    if settings.release_key is not None:
        return Account.from_key(settings.release_key.get_secret_value())
    if settings.env == "production":
        raise ValueError("the release relayer (qcl worker) needs QCL_RELEASE_KEY in production")
    return dev_account(settings.accounts_path, "releaser")


def release_relayer(settings: Settings, ledger: Ledger, store: Store) -> ReleaseRelayer:
    """The release log's writer of this deployment (run by ``qcl dev`` or ``qcl worker``)."""
    account = release_account(settings)
    sender = RawSender(w3=ledger.w3, account=account, chain_id=ledger.chain_id)
    return ReleaseRelayer(store=store, ledger=ledger, sender=sender, depth=settings.pipeline_depth)


def operator_accounts(settings: Settings) -> DevAccounts:
    """The operator (ADMIN) and relayer accounts: from settings, else the dev accounts file."""
    if settings.operator_key and settings.relayer_key:
        return DevAccounts(
            admin=Account.from_key(settings.operator_key.get_secret_value()),
            relayer=Account.from_key(settings.relayer_key.get_secret_value()),
        )
    if settings.env == "production":  # Settings already refuses this; belt and braces
        raise ValueError("production needs QCL_OPERATOR_KEY and QCL_RELAYER_KEY")
    return dev_accounts(settings.accounts_path)


def open_node(settings: Settings) -> Node:
    """Start the embedded chain, or connect to ``settings.chain`` when it is a URL."""
    if settings.chain.startswith(("http://", "https://")):
        return connect(settings.chain, timeout=settings.rpc_timeout)
    state = None
    if settings.chain == "anvil" and settings.persist_chain:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        state = settings.data_dir / "anvil-state.json"
    return start_node(
        settings.chain,
        host=settings.chain_host,
        port=settings.chain_port,
        chain_id=settings.chain_id if settings.chain == "anvil" else None,
        state_path=state,
        log_dir=settings.data_dir / "logs",
        rpc_timeout=settings.rpc_timeout,
        state_interval=settings.state_interval or None,
    )


def bootstrap(settings: Settings, node: Node, say: Say = lambda _m: None) -> Ledger:
    """Compile, fund (local chains), deploy or reuse, and return a Ledger for ``node``."""
    compiled = compile_contracts()
    say(
        f"contracts compiled (solc {compiled.solc_version}, {compiled.route} route, source {compiled.source_hash[:12]}…)"
    )
    accounts = operator_accounts(settings)
    if node.kind in ("anvil", "hardhat", "ganache", "eth-tester"):
        for acct in (
            accounts.admin,
            accounts.relayer,
            *([] if settings.env == "production" else [release_account(settings)]),
        ):
            if node.w3.eth.get_balance(acct.address) < 10**20:
                node.fund(acct.address)
    elif node.w3.eth.get_balance(accounts.admin.address) == 0 and settings.env == "dev":
        raise ChainUnavailable(f"the operator account {accounts.admin.address} has no Ether on {node.url}")
    decoder = RevertDecoder([c.abi for c in compiled.contracts.values()])
    transactor = Transactor(w3=node.w3, account=accounts.admin, decoder=decoder)
    deployment, reused = ensure_deployment(
        transactor,
        compiled,
        admin=accounts.admin.address,
        manifest=settings.manifest_path,
        auditors=first_auditors(settings, accounts),
    )
    say(
        ("reusing" if reused else "deployed")
        + f" contracts on chain {deployment.chain_id}: "
        + ", ".join(f"{n} {a}" for n, a in deployment.contracts.items())
    )
    return Ledger(
        w3=node.w3, deployment=deployment, compiled=compiled, operator=accounts.admin, relayer=accounts.relayer
    )


def open_store(settings: Settings) -> Store:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(settings.vault_database_url)


def open_keyring(settings: Settings) -> FileKeyRing:
    return FileKeyRing(
        settings.vault_keyring_path,
        settings.vault_passphrase.get_secret_value(),
        profile_name=settings.crypto_profile,
    )


def open_vault(settings: Settings, ledger: Ledger | None) -> Vault:
    """The vault of this deployment: its database, key ring and (for chain work) ledger, whose
    operator (and relay) account then stores each transaction before it is sent (:class:`Vault`).

    On PostgreSQL (where several processes share the deployment: ``qcl serve --workers N`` beside
    ``qcl worker``) the operator's and the relayer's nonces are taken from the database
    (:class:`db.nonces.SharedNonces`), so two processes never sign with the same nonce."""
    store = open_store(settings)
    if ledger is not None and store.url.startswith("postgresql"):
        share_nonces(ledger, store)
    return Vault(store=store, keyring=open_keyring(settings), ledger=ledger)  # type: ignore[arg-type]


def share_nonces(ledger: Ledger, store: Store) -> None:
    """Take the nonces of the ledger's operator and relayer accounts from ``store``."""
    for transactor in {id(t): t for t in (ledger.tx, ledger.relay)}.values():
        transactor.nonces = SharedNonces(store, ledger.w3, transactor.address)
