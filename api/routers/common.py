"""Helpers shared by routers."""

from __future__ import annotations

from typing import Any


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemPublic"}}},
    }


#: Every error answer an operation can give (RFC 9457 bodies; ``ProblemPublic`` is added to the
#: OpenAPI components by :func:`api.app.create_app`).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("not logged in, or the token is invalid"),
    403: _problem("not allowed (role, grant rules, signature)"),
    404: _problem("unknown, or not yours to see"),
    409: _problem("conflict: replay (nonce_used, request_used) or state (member_exists, request_closed, …)"),
    410: _problem("the document was crypto-shredded (document_deleted)"),
    413: _problem("request body too large (body_too_large)"),
    422: _problem("malformed input (invalid_input names the field)"),
    503: _problem("chain or database unavailable"),
}
