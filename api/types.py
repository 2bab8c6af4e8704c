"""Validated JSON value types: addresses, 32-byte hex, unsigned integers, signatures."""

from __future__ import annotations

import re
from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_SIG = re.compile(r"^0x[0-9a-fA-F]{130}$")


def _address(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 42 or not is_address(value):
        raise ValueError("must be a 20-byte address: 0x followed by 40 hex digits")
    digits = value[2:]
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and to_checksum_address(value) != value:
        raise ValueError("mixed-case address with a wrong EIP-55 checksum")
    return to_checksum_address(value)


def _bytes32(value: Any) -> str:
    if not isinstance(value, str) or not _HEX32.match(value):
        raise ValueError("must be 32 bytes: 0x followed by 64 hex digits")
    return value.lower()


def _uint(bits: int) -> Any:
    limit = 2**bits

    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be an integer, not a boolean")
        if isinstance(value, str):
            if not value.isdigit() or len(value) > 78:
                raise ValueError("must be a decimal integer string")
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's "integer" includes 368.0; its value is exact
        if not isinstance(value, int):
            raise ValueError("must be an integer or a decimal string")
        if not 0 <= value < limit:
            raise ValueError(f"must be between 0 and 2^{bits}-1")
        return value

    return check


def _signature(value: Any) -> str:
    if not isinstance(value, str) or not _SIG.match(value):
        raise ValueError("must be a 65-byte signature r||s||v: 0x followed by 130 hex digits")
    return value.lower()


#: The OpenAPI ``format`` of addresses: what the pattern cannot say, that a mixed-case address must
#: carry a correct EIP-55 checksum (all lower- or all upper-case digits carry none and are accepted).
ADDRESS_FORMAT = "eth-address"

Address = Annotated[
    str,
    BeforeValidator(_address),
    WithJsonSchema(
        {
            "type": "string",
            "format": ADDRESS_FORMAT,
            "pattern": "^0x[0-9a-fA-F]{40}$",
            "description": "0x and 40 hex digits; if mixed-case, with a correct EIP-55 checksum",
            "examples": ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
        }
    ),
]
Bytes32 = Annotated[
    str,
    BeforeValidator(_bytes32),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{64}$",
            "examples": ["0x2f8cbc0fc2b9d2f0a2a7a0cbd98a5f2e2e84c8a6f7d2c1b0a9f8e7d6c5b4a392"],
        }
    ),
]
Signature = Annotated[
    str,
    BeforeValidator(_signature),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$"}),
]
_UINT_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,78}$"}]}
Uint256 = Annotated[
    int, BeforeValidator(_uint(256)), WithJsonSchema(_UINT_SCHEMA), PlainSerializer(str, return_type=str)
]
Uint64 = Annotated[
    int, BeforeValidator(_uint(64)), WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 2**64 - 1})
]
Uint32 = Annotated[
    int, BeforeValidator(_uint(32)), WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 2**32 - 1})
]
Limit = Annotated[int, Field(ge=1, le=500)]
Offset = Annotated[int, Field(ge=0, le=10**9)]
