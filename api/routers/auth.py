"""Login with Sign-In with Ethereum (SPEC §5)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ..deps import AuthDep
from ..types import Address, Signature
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=PROBLEM_RESPONSES)


class ChallengeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Address


class ChallengePublic(BaseModel):
    message: str = Field(description="the EIP-4361 text to sign with personal_sign, exactly as given")
    nonce: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(max_length=4096)
    signature: Signature


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    roles: list[str]


@router.post("/challenge", response_model=ChallengePublic)
def challenge(body: ChallengeCreate, auth: AuthDep) -> ChallengePublic:
    """A single-use login challenge (valid 10 minutes) for ``address``."""
    message, nonce = auth.challenge(body.address)
    return ChallengePublic(message=message, nonce=nonce)


@router.post("/token", response_model=TokenPublic, responses=PROBLEM_RESPONSES)
def token(body: TokenCreate, auth: AuthDep) -> TokenPublic:
    """Exchange a signed challenge for a bearer token. Only active members get one."""
    issued = auth.token(body.message, body.signature)
    return TokenPublic(access_token=issued.access_token, expires_in=issued.expires_in, roles=issued.roles)
