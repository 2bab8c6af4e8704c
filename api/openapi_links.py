"""OpenAPI links (OpenAPI 3.1 §4.8.20): where an id one operation returns is the input of another.

They document the API's object lifecycles for clients and drive Schemathesis's stateful phase
(tests/api/test_schemathesis.py), which follows them to chain calls: create a document, then read
and delete it; ask for access, then read and answer the request; record a grant, then pause and
revoke it; propose an emergency, then approve it and release under it; start a verification, then
poll it; add a member, then read and suspend it; add a webhook, then read its deliveries and delete it.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Link(NamedTuple):
    source: tuple[str, str, str]  # (path, method, status) of the response the id comes from
    name: str
    target: tuple[str, str]  # (path, method) of the operation it feeds
    parameters: dict[str, str]  # target parameter -> runtime expression


def _id(field: str) -> str:
    return f"$response.body#/{field}"


LINKS: list[Link] = [
    Link(("/v1/documents", "post", "201"), "GetDocument", ("/v1/documents/{document_id}", "get"),
         {"document_id": _id("document_id")}),
    Link(("/v1/documents", "post", "201"), "DeleteDocument", ("/v1/documents/{document_id}", "delete"),
         {"document_id": _id("document_id")}),
    Link(("/v1/documents/{document_id}", "delete", "200"), "GetDeletedDocument", ("/v1/documents/{document_id}", "get"),
         {"document_id": _id("document_id")}),
    Link(("/v1/access-requests", "post", "201"), "GetAccessRequest", ("/v1/access-requests/{request_id}", "get"),
         {"request_id": _id("id")}),
    Link(("/v1/access-requests", "post", "201"), "AnswerAccessRequest",
         ("/v1/access-requests/{request_id}/answer", "post"), {"request_id": _id("id")}),
    Link(("/v1/access-requests/{request_id}/answer", "post", "200"), "GetAnsweredRequest",
         ("/v1/access-requests/{request_id}", "get"), {"request_id": _id("id")}),
    Link(("/v1/grants", "post", "201"), "PauseGrant", ("/v1/grants/{grant_id}/pause", "post"),
         {"grant_id": _id("grant_id")}),
    Link(("/v1/grants", "post", "201"), "RevokeGrant", ("/v1/grants/{grant_id}/revoke", "post"),
         {"grant_id": _id("grant_id")}),
    Link(("/v1/emergencies", "post", "201"), "ApproveEmergency", ("/v1/emergencies/{emergency_id}/approve", "post"),
         {"emergency_id": _id("emergency_id")}),
    Link(("/v1/emergencies", "post", "201"), "EmergencyRelease", ("/v1/emergencies/{emergency_id}/releases", "post"),
         {"emergency_id": _id("emergency_id")}),
    Link(("/v1/emergencies/{emergency_id}/approve", "post", "200"), "ReleaseUnderEmergency",
         ("/v1/emergencies/{emergency_id}/releases", "post"), {"emergency_id": _id("emergency_id")}),
    Link(("/v1/releases", "post", "201"), "InclusionProof", ("/v1/audit/proofs/inclusion", "get"),
         {"release_id": _id("release_id")}),
    Link(("/v1/audit/verifications", "post", "202"), "GetVerification", ("/v1/audit/verifications/{job_id}", "get"),
         {"job_id": _id("id")}),
    Link(("/v1/members", "post", "201"), "GetMember", ("/v1/members/{address}", "get"), {"address": _id("address")}),
    Link(("/v1/members", "post", "201"), "SuspendMember", ("/v1/members/{address}/suspend", "post"),
         {"address": _id("address")}),
    Link(("/v1/webhooks", "post", "201"), "WebhookDeliveries", ("/v1/webhooks/{webhook_id}/deliveries", "get"),
         {"webhook_id": _id("webhook_id")}),
    Link(("/v1/webhooks", "post", "201"), "DeleteWebhook", ("/v1/webhooks/{webhook_id}", "delete"),
         {"webhook_id": _id("webhook_id")}),
]  # fmt: skip


def add_links(schema: dict[str, Any]) -> None:
    """Add ``LINKS`` to the responses of ``schema`` (an OpenAPI document FastAPI generated), in place.

    A link whose source or target operation the document does not have is an error: the table must
    follow the routes."""
    paths = schema["paths"]
    for link in LINKS:
        path, method, status = link.source
        target_path, target_method = link.target
        if target_method not in paths.get(target_path, {}):
            raise KeyError(f"OpenAPI link {link.name}: no operation {target_method.upper()} {target_path}")
        response = paths[path][method]["responses"][status]
        response.setdefault("links", {})[link.name] = {
            "operationId": paths[target_path][target_method]["operationId"],
            "parameters": link.parameters,
            "description": f"the {', '.join(link.parameters)} of the {target_method.upper()} {target_path} call",
        }
