"""Typed access to the deployed contracts: one method per contract operation."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from ._compiler import CompilationResult
from ._deploy import Deployment
from ._revert import RevertDecoder
from ._tx import Receipt, Transactor, guard
from .eip712 import DOMAIN_NAME, DOMAIN_VERSION
from .types import Address, Eip712Domain, Member, Role


def org_id(org_code: str | None) -> bytes:
    """The on-chain identifier of an organisation code: keccak256 of it, or zero for none."""
    return keccak(text=org_code) if org_code else bytes(32)


class Ledger:
    """The consent ledger and member registry of one deployment, seen by the platform operator.

    ``operator`` signs the transactions that are not signed by a data subject (SPEC §3): it holds
    ADMIN on chain.
    """

    def __init__(self, *, w3: Web3, deployment: Deployment, compiled: CompilationResult, operator: LocalAccount) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.decoder = RevertDecoder([c.abi for c in compiled.contracts.values()])
        self.tx = Transactor(w3=w3, account=operator, decoder=self.decoder)
        self.registry = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.contracts["MemberRegistry"]), abi=compiled["MemberRegistry"].abi
        )
        self.consent = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.contracts["ConsentLedger"]), abi=compiled["ConsentLedger"].abi
        )

    # ---- chain --------------------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def head_block(self) -> int:
        return int(guard(lambda: self.w3.eth.block_number))

    def domain(self) -> Eip712Domain:
        """The EIP-712 domain of SPEC §3 for this deployment."""
        return Eip712Domain(
            name=DOMAIN_NAME,
            version=DOMAIN_VERSION,
            chain_id=self.deployment.chain_id,
            verifying_contract=Address(self.consent.address),
        )

    # ---- member registry ----------------------------------------------------------------------

    def onboard(self, account: str, roles: Role, *, org_code: str | None = None, hpke_key: bytes = b"") -> Receipt:
        fn = self.registry.functions.onboard(_addr(account), int(roles), org_id(org_code), hpke_key)
        return self.tx.transact(fn)

    def update_member(self, account: str, roles: Role, *, org_code: str | None = None, hpke_key: bytes = b"") -> Receipt:
        fn = self.registry.functions.updateMember(_addr(account), int(roles), org_id(org_code), hpke_key)
        return self.tx.transact(fn)

    def set_suspended(self, account: str, suspended: bool) -> Receipt:
        return self.tx.transact(self.registry.functions.setSuspended(_addr(account), suspended))

    def member(self, account: str) -> Member:
        address = _addr(account)
        roles, suspended, since, oid = self.tx.call(self.registry.functions.member(address))
        key = self.tx.call(self.registry.functions.hpkeKey(address)) if roles else b""
        return Member(
            address=Address(address),
            roles=Role(roles),
            suspended=bool(suspended),
            since=int(since),
            org_id=bytes(oid),
            hpke_key=bytes(key),
        )

    def is_active(self, account: str, roles: Role = Role(0)) -> bool:
        return bool(self.tx.call(self.registry.functions.isActive(_addr(account), int(roles))))

    # ---- consent ledger -----------------------------------------------------------------------

    def hash_grant(self, message: dict[str, Any]) -> bytes:
        """The contract's own digest of a ``Grant`` message (its grant id)."""
        fields = (
            _addr(message["subject"]),
            _addr(message["grantee"]),
            [bytes(r) for r in message["resources"]],
            bytes(message["purpose"]),
            int(message["validFrom"]),
            int(message["validUntil"]),
            int(message["maxUses"]),
            int(message["nonce"]),
            int(message["deadline"]),
        )
        return bytes(self.tx.call(self.consent.functions.hashGrant(fields)))

    def domain_separator(self) -> bytes:
        return bytes(self.tx.call(self.consent.functions.domainSeparator()))


def _addr(value: str) -> str:
    return Web3.to_checksum_address(value)
