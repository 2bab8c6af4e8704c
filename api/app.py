"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from chain_client import Ledger

from . import errors
from .routers import system
from .settings import Settings

DESCRIPTION = """\
Quanchenglian (泉城链) records on a permissioned chain which department may use which of a
citizen's or enterprise's data, for what purpose and for how long, and releases documents from
the encrypted digital safe-deposit box only after the chain has recorded an authorised release.
Errors are RFC 9457 `application/problem+json` bodies with a stable `code`.
"""


def create_app(settings: Settings, *, ledger: Ledger) -> FastAPI:
    """Build the API around a connected :class:`Ledger` (collaborators come in, nothing global)."""
    app = FastAPI(title="Quanchenglian ledger API", version="1", description=DESCRIPTION)
    app.state.settings = settings
    app.state.ledger = ledger
    errors.install(app)
    app.include_router(system.router)
    return app
