"""Which logged-in member asked for an operator transaction (SPEC §3)."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from db.models import ActionRecord


def record_action(session: Session, *, actor: str, action: str, target: str, tx_hash: str | None) -> None:
    """Keep which logged-in member asked for an operator transaction (SPEC §3)."""
    session.add(ActionRecord(actor=actor, action=action, target=target, tx_hash=tx_hash, at=int(time.time())))
