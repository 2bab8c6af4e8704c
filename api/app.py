"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from chain_client import Ledger
from chain_client.indexer import Indexer
from db.index_store import SqlIndexStore
from vault import Vault

from . import errors
from .auth import Authenticator, jwt_secret
from .background import CheckpointAnchor, IndexFollower, VerificationJobs
from .middleware import BodySizeLimit
from .routers import (
    access_requests,
    audit,
    auth,
    catalog,
    documents,
    emergencies,
    grants,
    members,
    releases,
    system,
)
from .settings import Settings

DESCRIPTION = """\
Quanchenglian (泉城链) records on a permissioned chain which department may use which of a
citizen's or enterprise's data, for what purpose and for how long, and releases documents from
the encrypted digital safe-deposit box only after the chain has recorded an authorised release.

Log in with Sign-In with Ethereum (`POST /v1/auth/challenge`, then `POST /v1/auth/token`) and
send `Authorization: Bearer <token>`. Errors are RFC 9457 `application/problem+json` bodies with
a stable `code`.
"""


def create_app(settings: Settings, *, ledger: Ledger, vault: Vault | None = None) -> FastAPI:
    """Build the API around a connected :class:`Ledger` and the vault (collaborators come in)."""
    if vault is None:
        from .runtime import open_vault

        vault = open_vault(settings, ledger)
    anchor = CheckpointAnchor(vault, interval=settings.checkpoint_interval, every=settings.checkpoint_every)
    indexer = (
        Indexer(ledger=ledger, store=SqlIndexStore(vault.store), confirmations=settings.index_confirmations)
        if settings.indexer
        else None
    )
    follower = IndexFollower(indexer, interval=settings.index_interval) if indexer is not None else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.checkpoints:
            anchor.start()
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            anchor.stop()
            if follower is not None:
                follower.stop()

    app = FastAPI(title="Quanchenglian ledger API", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.checkpoints = anchor
    app.state.indexer = indexer
    app.state.verifications = VerificationJobs()
    app.state.settings = settings
    app.state.ledger = ledger
    app.state.vault = vault
    app.state.authenticator = Authenticator(
        store=vault.store, ledger=ledger, settings=settings, secret=jwt_secret(settings)
    )
    errors.install(app)
    _document_problems(app)
    for module in (system, auth, members, catalog, documents, grants, access_requests, releases, emergencies, audit):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def _document_problems(app: FastAPI) -> None:
    """Add the RFC 9457 ``ProblemPublic`` schema the routers' error responses refer to, and the
    links between operations (api/openapi_links.py)."""
    from fastapi.openapi.utils import get_openapi

    from .openapi_links import add_links
    from .schemas import ProblemPublic

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["ProblemPublic"] = ProblemPublic.model_json_schema(ref_template="#/components/schemas/{model}")
            add_links(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
