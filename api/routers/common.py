"""Helpers shared by routers."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from ..models import ActionRecord

PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "not logged in", "content": {"application/problem+json": {}}},
    403: {"description": "not allowed", "content": {"application/problem+json": {}}},
    404: {"description": "unknown, or not yours to see", "content": {"application/problem+json": {}}},
    422: {"description": "malformed input", "content": {"application/problem+json": {}}},
    503: {"description": "chain or database unavailable", "content": {"application/problem+json": {}}},
}


def record_action(session: Session, *, actor: str, action: str, target: str, tx_hash: str | None) -> None:
    """Keep which logged-in member asked for an operator transaction (SPEC §3)."""
    session.add(ActionRecord(actor=actor, action=action, target=target, tx_hash=tx_hash, at=int(time.time())))
