"""Login with Sign-In with Ethereum (SPEC §5)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..auth import RateLimiter
from ..deps import AuthDep
from ..types import Address, Signature
from .common import PROBLEM_RESPONSES

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "too many requests (rate_limited); wait the `Retry-After` seconds",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemPublic"}}},
    }
}

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses={**PROBLEM_RESPONSES, **RATE_LIMITED})


def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def client_ip(request: Request) -> str:
    """The peer's address as the server saw it (behind a proxy: run uvicorn with
    ``--forwarded-allow-ips`` so that this is the client's, not the proxy's)."""
    return request.client.host if request.client else "unknown"


LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]


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
def challenge(body: ChallengeCreate, auth: AuthDep, limiter: LimiterDep, request: Request) -> ChallengePublic:
    """A single-use login challenge (valid 10 minutes) for ``address``.

    Rate-limited per client IP and per address (429 ``rate_limited`` with ``Retry-After``)."""
    limiter.hit("challenge_ip", client_ip(request), "login challenges from this client")
    limiter.hit("challenge_address", body.address.lower(), "login challenges for this account")
    message, nonce = auth.challenge(body.address)
    return ChallengePublic(message=message, nonce=nonce)


@router.post("/token", response_model=TokenPublic, responses=PROBLEM_RESPONSES)
def token(body: TokenCreate, auth: AuthDep, limiter: LimiterDep, request: Request) -> TokenPublic:
    """Exchange a signed challenge for a bearer token. Only active members get one.

    Rate-limited per client IP (429 ``rate_limited`` with ``Retry-After``)."""
    limiter.hit("token_ip", client_ip(request), "sign-in attempts from this client")
    issued = auth.token(body.message, body.signature)
    return TokenPublic(access_token=issued.access_token, expires_in=issued.expires_in, roles=issued.roles)
