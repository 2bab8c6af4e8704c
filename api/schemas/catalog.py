"""Bodies of the catalog routes: a resource to register, and the resources as listed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..types import Address

CODE_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


class ResourceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "id_card",
                    "name": "Resident identity card",
                    "provider": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                    "sensitivity": 3,
                }
            ]
        },
    )
    code: str = Field(pattern=CODE_PATTERN, description="catalog code; its keccak256 is the resource id")
    name: str = Field(min_length=1, max_length=200)
    provider: Address
    sensitivity: int = Field(ge=1, le=4, description="1 public … 4 highly sensitive; 3-4 must be named in grants")
    self_declared: bool = Field(
        False,
        description=(
            "v1.1: whether a subject's own document of this resource may be released (only while the "
            "provider has issued none); otherwise releases deliver the provider-issued document only"
        ),
    )


class ResourcePublic(BaseModel):
    code: str
    resource: str
    name: str
    provider: str
    sensitivity: int
    self_declared: bool = False
    tx_hash: str | None = None
