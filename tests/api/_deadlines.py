"""What the tests of deadlines share (tests/api/test_events.py, tests/api/test_clock_jumps.py): the
node's clock moved by RPC, the indexer synced, a member's events read, and one scenario: a grant,
an emergency and an access request, each with an end ahead."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from web3.types import RPCEndpoint

from qcl_client import QclClient
from tests.api.conftest import Platform


def rpc(p: Platform, method: str, *params: Any) -> Any:
    response = p.deployed.node.w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in response, response
    return response.get("result")


def sync(p: Platform) -> None:
    p.http.app.state.indexer.sync()  # type: ignore[attr-defined]


def events_of(client: QclClient, after: int = 0) -> list[dict[str, Any]]:
    """Every event of the client's member after ``after``, through the paged feed."""
    items: list[dict[str, Any]] = []
    while True:
        page = client.call("GET", "/v1/events", params={"after": after, "limit": 7})
        items += page["items"]
        if not page["items"]:
            return items
        after = page["items"][-1]["sequence"]


@dataclass(frozen=True)
class Deadlines:
    grant_id: str
    #: The grant's ``validUntil`` (it began a minute before the scenario).
    grant_until: int
    emergency_id: str
    #: The emergency's ``validUntil``.
    emergency_until: int
    #: The access request as the API answered it (``id``, ``expires_at``, …).
    request: dict[str, Any]


def open_deadlines(p: Platform, *, grant_for: int, emergency_hours: float, request_expires_in: int) -> Deadlines:
    """The citizen's grant of ``tax_record`` to the department, from a minute ago for ``grant_for``
    seconds; an emergency over ``id_card`` for the department, proposed and approved,
    ``emergency_hours`` long; the department's access request to the citizen, expiring in
    ``request_expires_in`` seconds; then the index synced."""
    start = int(time.time()) - 60
    grant = p.citizen.grant(p.dept.address, ["tax_record"], "loan-application", valid_from=start, valid_for=grant_for)
    message = p.admin.emergency_message(["id_card"], [p.dept.address], "Fire drill", hours=emergency_hours)
    proposed = p.admin.propose_emergency(message, "Fire drill")
    p.auditor.approve_emergency(message)
    request = p.dept.call(
        "POST",
        "/v1/access-requests",
        json={
            "subject": p.citizen.address,
            "resources": ["tax_record"],
            "purpose": "x",
            "valid_for": 60,
            "expires_in": request_expires_in,
        },
    )
    sync(p)
    return Deadlines(
        grant_id=grant["grant_id"],
        grant_until=start + grant_for,
        emergency_id=proposed["emergency_id"],
        emergency_until=message["validUntil"],
        request=dict(request),
    )
