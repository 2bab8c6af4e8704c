"""Errors raised by :mod:`chain_client`.

Every error derives from :class:`ChainError`. Reverts of our contracts' custom errors are decoded
once, in :mod:`chain_client._revert`, into the subclasses of :class:`ContractRevert` below.
"""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Root of every error raised by chain_client."""


class ToolMissing(ChainError):
    """A program the toolchain needs (node, npm, a package) is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} not found: {hint}")
        self.tool = tool
        self.hint = hint


class CompilationFailed(ChainError):
    """The Solidity compiler reported errors."""


class ChainUnavailable(ChainError):
    """The chain's JSON-RPC endpoint did not answer, or a node failed to start."""


class DeploymentMismatch(ChainError):
    """A deployment manifest does not match the chain or the compiled contracts."""


class TransactionFailed(ChainError):
    """A transaction was mined but reverted without a custom error we know."""

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class ContractRevert(ChainError):
    """A call or transaction reverted with one of our contracts' custom errors.

    ``error`` is the Solidity error name and ``args`` its decoded arguments by name.
    """

    def __init__(self, error: str, args: dict[str, Any], *, tx_hash: str | None = None) -> None:
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in args.items())
        super().__init__(f"{error}({rendered})")
        self.error = error
        self.args_by_name = args
        self.tx_hash = tx_hash


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


# ---- member registry -------------------------------------------------------------------------


class NotAuthorized(ContractRevert):
    """The caller lacks the role the operation needs (MemberRegistryUnauthorized)."""


class ZeroAddress(ContractRevert, ValueError):
    """The zero address was given where an account is needed."""


class AlreadyMember(ContractRevert):
    """The account is already onboarded."""


class UnknownMember(ContractRevert):
    """The account is not a member of the ledger."""


class InvalidRoles(ContractRevert, ValueError):
    """The role mask is empty or names an unknown role."""


class InvalidHpkeKey(ContractRevert, ValueError):
    """A consumer's HPKE key is missing or of the wrong length, or a non-consumer gave one."""


class SuspensionUnchanged(ContractRevert):
    """The member already is in the requested suspension state."""


class SelfLockout(ContractRevert):
    """An ADMIN tried to suspend itself or drop its own ADMIN role."""


class ConstructionRevert(ContractRevert):
    """A constructor argument was refused (OpenZeppelin ShortStrings errors of the EIP-712 name)."""


#: Solidity custom error name -> Python exception class. Every custom error declared by our
#: contracts must appear here; a test enforces it.
REVERT_CLASSES: dict[str, type[ContractRevert]] = {
    "MemberRegistryUnauthorized": NotAuthorized,
    "MemberRegistryZeroAddress": ZeroAddress,
    "MemberRegistryAlreadyMember": AlreadyMember,
    "MemberRegistryUnknownMember": UnknownMember,
    "MemberRegistryInvalidRoles": InvalidRoles,
    "MemberRegistryInvalidHpkeKey": InvalidHpkeKey,
    "MemberRegistrySuspensionUnchanged": SuspensionUnchanged,
    "MemberRegistrySelfLockout": SelfLockout,
    "InvalidShortString": ConstructionRevert,
    "StringTooLong": ConstructionRevert,
}
