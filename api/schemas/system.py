"""Bodies of the system routes (health, chain) and the RFC 9457 problem body (SPEC §6)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Eip712DomainPublic(BaseModel):
    name: str = Field(examples=["Quanchenglian"])
    version: str = Field(examples=["1"])
    chainId: int = Field(examples=[31337])
    verifyingContract: str = Field(examples=["0x5FbDB2315678afecb367f032d93F642f64180aa3"])


class ChainPublic(BaseModel):
    """What a client needs to sign SPEC §3 messages for this deployment."""

    chain_id: int = Field(examples=[31337])
    contracts: dict[str, str] = Field(description="contract name -> address")
    domain: Eip712DomainPublic


class HealthPublic(BaseModel):
    status: Literal["ok"]
    chain_id: int
    head_block: int
    contracts: dict[str, str]


class ProblemPublic(BaseModel):
    """RFC 9457 problem details with a stable ``code``."""

    type: str
    title: str
    status: int
    code: str = Field(examples=["chain_unavailable"])
    detail: str
    instance: str | None = None
