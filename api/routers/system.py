"""Service health and the chain description clients sign against."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import LedgerDep
from ..schemas.system import ChainPublic, Eip712DomainPublic, HealthPublic

router = APIRouter(tags=["system"])

_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "the chain does not answer (`chain_unavailable`)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemPublic"}}},
    }
}


@router.get("/health", response_model=HealthPublic, responses=_UNAVAILABLE)
def health(ledger: LedgerDep) -> HealthPublic:
    """Liveness and readiness: answers 200 only when the chain answers too."""
    head = ledger.head_block()
    return HealthPublic(
        status="ok", chain_id=ledger.chain_id, head_block=head, contracts=dict(ledger.deployment.contracts)
    )


@router.get("/v1/chain", response_model=ChainPublic)
def chain(ledger: LedgerDep) -> ChainPublic:
    """The chain id, contract addresses and EIP-712 domain of SPEC §3."""
    domain = ledger.domain()
    return ChainPublic(
        chain_id=ledger.chain_id,
        contracts=dict(ledger.deployment.contracts),
        domain=Eip712DomainPublic(**domain.as_dict()),  # type: ignore[arg-type]
    )
