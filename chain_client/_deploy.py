"""Deploy the contracts, write a deployment manifest, and reuse a matching deployment."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak
from web3 import Web3

from ._compiler import CompilationResult
from ._tx import Transactor, guard
from .errors import DeploymentMismatch

#: Deployable contracts, in deployment order.
CONTRACTS = ("ConsentLedger", "AuditAnchor")
#: Approvals that activate an emergency (SPEC §3: never below 2, one ADMIN and one AUDITOR).
DEFAULT_EMERGENCY_THRESHOLD = 2


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain (the manifest's content)."""

    chain_id: int
    contracts: dict[str, str]
    code_hashes: dict[str, str]
    deploy_block: int
    deployer: str
    compiler_version: str
    source_hash: str
    deployed_at: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)


def deploy(
    transactor: Transactor,
    compiled: CompilationResult,
    *,
    admin: str,
    auditors: Sequence[str] = (),
    emergency_threshold: int = DEFAULT_EMERGENCY_THRESHOLD,
) -> Deployment:
    """Deploy every contract with ``transactor``'s account.

    ``admin`` becomes the first ADMIN and ``auditors`` (at most 16 EOAs, none of them ``admin``)
    the first AUDITORs: later auditors are enrolled only with an existing auditor's signature
    (SPEC §9.8), so a deployment without any can never have one.
    """
    first_auditors = [Web3.to_checksum_address(a) for a in auditors]
    w3 = transactor.w3
    addresses: dict[str, str] = {}
    first_block: int | None = None
    for name in CONTRACTS:
        art = compiled[name]
        args: list[Any] = (
            [admin, first_auditors, emergency_threshold] if name == "ConsentLedger" else [addresses["ConsentLedger"]]
        )
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = transactor.transact(factory.constructor(*args))
        assert receipt.contract_address is not None
        addresses[name] = Web3.to_checksum_address(receipt.contract_address)
        first_block = receipt.block_number if first_block is None else first_block
    return Deployment(
        chain_id=transactor.chain_id,
        contracts=addresses,
        code_hashes={n: _code_hash(w3, a) for n, a in addresses.items()},
        deploy_block=int(first_block or 0),
        deployer=transactor.address,
        compiler_version=compiled.solc_version,
        source_hash=compiled.source_hash,
        deployed_at=int(time.time()),
    )


def _code_hash(w3: Web3, address: str) -> str:
    code = guard(lambda: w3.eth.get_code(Web3.to_checksum_address(address)))
    return "0x" + keccak(bytes(code)).hex()


def check_deployment(w3: Web3, deployment: Deployment, compiled: CompilationResult) -> None:
    """Raise :class:`DeploymentMismatch` unless ``deployment`` is live on ``w3`` with this code."""
    chain_id = int(guard(lambda: w3.eth.chain_id))
    if deployment.chain_id != chain_id:
        raise DeploymentMismatch(f"manifest is for chain {deployment.chain_id}, the node is chain {chain_id}")
    if deployment.source_hash != compiled.source_hash:
        raise DeploymentMismatch("the contracts changed since this deployment (source hash differs)")
    for name in CONTRACTS:
        address = deployment.contracts.get(name)
        if address is None:
            raise DeploymentMismatch(f"manifest has no {name}")
        if _code_hash(w3, address) != deployment.code_hashes.get(name):
            raise DeploymentMismatch(f"{name} at {address} is not the deployed code")


def ensure_deployment(
    transactor: Transactor,
    compiled: CompilationResult,
    *,
    admin: str,
    manifest: Path | None,
    auditors: Sequence[str] = (),
) -> tuple[Deployment, bool]:
    """Reuse the deployment in ``manifest`` when it matches the chain and code, else deploy
    (with ``admin`` and the first ``auditors``).

    Returns the deployment and whether it was reused.
    """
    if manifest is not None and manifest.is_file():
        try:
            existing = Deployment.from_json(manifest.read_text())
            check_deployment(transactor.w3, existing, compiled)
            return existing, True
        except (DeploymentMismatch, ValueError, TypeError, KeyError):
            pass
    fresh = deploy(transactor, compiled, admin=admin, auditors=auditors)
    if manifest is not None:
        fresh.write(manifest)
    return fresh, False
