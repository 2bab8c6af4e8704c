"""Decode reverts of our contracts into typed Python exceptions, in one place."""

from __future__ import annotations

import ast
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from .errors import REVERT_CLASSES, ContractRevert, TransactionFailed


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(_canonical(i) for i in item['inputs'])})"


def _canonical(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind


class RevertDecoder:
    """Maps 4-byte selectors of every custom error in the given ABIs to exceptions."""

    def __init__(self, abis: list[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    self._errors[keccak(text=_signature(item))[:4]] = item

    @property
    def error_names(self) -> set[str]:
        return {item["name"] for item in self._errors.values()}

    def from_selector(self, selector: bytes, args: dict[str, Any]) -> ContractRevert:
        """The exception class of a known 4-byte error selector, built with the given ``args``."""
        item = self._errors.get(bytes(selector))
        name = item["name"] if item else "0x" + bytes(selector).hex()
        return REVERT_CLASSES.get(name, ContractRevert)(name, args)

    def decode(self, data: bytes | str | None, *, tx_hash: str | None = None) -> Exception:
        """The exception for revert ``data`` (a known custom error, or :class:`TransactionFailed`)."""
        raw = _to_bytes(data)
        item = self._errors.get(raw[:4]) if len(raw) >= 4 else None
        if item is None:
            reason = "0x" + raw.hex() if raw else "no revert data"
            return TransactionFailed(f"reverted ({reason})", tx_hash=tx_hash)
        types = [_canonical(i) for i in item["inputs"]]
        values = abi_decode(types, raw[4:]) if types else ()
        args = {i["name"]: _normalise(i["type"], v) for i, v in zip(item["inputs"], values, strict=True)}
        cls = REVERT_CLASSES.get(item["name"], ContractRevert)
        return cls(item["name"], args, tx_hash=tx_hash)


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _normalise(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    return value


def revert_data(exc: BaseException) -> str | None:
    """The revert data carried by a web3.py or JSON-RPC exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, dict):  # ganache: {"result": "0x…", "message": "revert", …}
        for key in ("data", "result"):
            inner = data.get(key)
            if isinstance(inner, str):
                return inner
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict):
        err = response.get("error") or {}
        inner = err.get("data") if isinstance(err, dict) else None
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict):
            for key in ("data", "result"):
                if isinstance(inner.get(key), str):
                    return str(inner[key])
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, dict):
            found = arg.get("data")
            if isinstance(found, str):
                return found
        if isinstance(arg, str) and arg.startswith(_ETH_TESTER_PREFIX):
            # eth-tester renders the revert bytes with repr(): "execution reverted: b'…'"
            try:
                raw = ast.literal_eval(arg[len(_ETH_TESTER_PREFIX) :])
            except (ValueError, SyntaxError):
                return None
            return "0x" + raw.hex() if isinstance(raw, bytes) else None
    return None


_ETH_TESTER_PREFIX = "execution reverted: "
