"""Errors of the use cases; each is mapped to its HTTP status and ``code`` in :mod:`api.errors`."""

from __future__ import annotations


class ServiceError(Exception):
    """A use case refused: bad input, not allowed, or not found (never a server fault)."""


class InvalidInput(ServiceError):
    """Input that is well-formed but inconsistent (e.g. the id in the path differs from the message's)."""


class NotVisible(ServiceError):
    """Unknown, or not the caller's to see (both answer 404, so that existence does not leak)."""


class GrantNotVisible(NotVisible):
    pass


class EmergencyNotVisible(NotVisible):
    pass


class Forbidden(ServiceError):
    """The caller may not do this (the scope of a list, say)."""


class RoleRequired(Forbidden):
    pass


class MemberSuspended(Forbidden):
    """A suspended member may only withdraw its own grants (SPEC §9.8)."""


class ReasonMismatch(ServiceError):
    """An emergency's ``reason`` is not keccak256(salt || utf8(text))."""


class EmergencyOutOfScope(Forbidden):
    """The consumer is not listed in the emergency."""


class NotGrantee(Forbidden):
    """Only a grant's grantee may request releases under it."""


class RequestUsed(ServiceError):
    """The grantee used this request id for another request."""


class ReleaseNotVisible(NotVisible):
    pass


class ReleasePending(ServiceError):
    """The release's block is not in yet (the chain is slow or down): send the same request again."""
