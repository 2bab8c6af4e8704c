"""chain_client: the only code that talks to a chain.

Compile the contracts, start or connect to a node, deploy, and call the contracts with locally
signed transactions whose reverts arrive as typed exceptions.
"""

import os as _os

# Keccak-256 through safe-pysha3 (a pinned dependency; about 4x faster than the pycryptodome
# backend eth-hash would pick): addresses are checksummed and ids hashed on every request.
_os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")


from ._compiler import CompilationResult, CompiledContract, compile_contracts, compiler_config, standard_json_input
from ._deploy import CONTRACTS, Deployment, check_deployment, deploy, ensure_deployment
from ._tx import NonceManager, Receipt, Transactor
from .errors import (
    ChainError,
    ChainUnavailable,
    CompilationFailed,
    ContractRevert,
    DeploymentMismatch,
    ToolMissing,
    TransactionFailed,
)
from .indexer import IndexConflict, IndexedEvent, Indexer, IndexStore, SyncReport
from .ledger import Ledger, MulticallResult, org_id
from .nodes import LOCAL_KINDS, Node, connect, free_port, open_chain, start_node
from .types import Address, Bytes32, Eip712Domain, Member, Role

__all__ = [
    "CONTRACTS",
    "LOCAL_KINDS",
    "Address",
    "Bytes32",
    "ChainError",
    "ChainUnavailable",
    "CompilationFailed",
    "CompilationResult",
    "CompiledContract",
    "ContractRevert",
    "Deployment",
    "DeploymentMismatch",
    "Eip712Domain",
    "IndexConflict",
    "IndexStore",
    "IndexedEvent",
    "Indexer",
    "Ledger",
    "Member",
    "MulticallResult",
    "Node",
    "NonceManager",
    "Receipt",
    "Role",
    "SyncReport",
    "ToolMissing",
    "TransactionFailed",
    "Transactor",
    "check_deployment",
    "compile_contracts",
    "compiler_config",
    "connect",
    "deploy",
    "ensure_deployment",
    "free_port",
    "open_chain",
    "org_id",
    "standard_json_input",
    "start_node",
]
