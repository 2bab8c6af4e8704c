"""The FastAPI application factory."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from audit.log_tree import LogTree
from chain_client import Ledger
from chain_client.indexer import Indexer
from db.index_store import SqlIndexStore
from vault import Vault
from vault.releases import ReleaseRelayer

from . import errors, pages, threads
from .auth import Authenticator, RateLimiter, jwt_secret
from .background import CheckpointAnchor, IndexFollower, VerificationJobs, stop_all, verification_runner
from .calls import CallGroups
from .middleware import BodyGuard
from .notifications import EventClocks, WebhookDeliverer
from .query import reject_unknown_query
from .routers import (
    access_requests,
    audit,
    auth,
    catalog,
    corrections,
    data_quality,
    demands,
    documents,
    emergencies,
    events,
    grants,
    members,
    purposes,
    releases,
    system,
)
from .services.ledger_view import LedgerView
from .settings import Settings

DESCRIPTION = """\
Quanchenglian (泉城链) records on a permissioned chain which department may use which of a
citizen's or enterprise's data, for what purpose and for how long, and releases documents from
the encrypted digital safe-deposit box only after the chain has recorded an authorised release.

Log in with Sign-In with Ethereum (`POST /v1/auth/challenge`, then `POST /v1/auth/token`) and
send `Authorization: Bearer <token>`. Errors are RFC 9457 `application/problem+json` bodies with
a stable `code`.
"""


def create_app(
    settings: Settings, *, ledger: Ledger, vault: Vault | None = None, relayer: ReleaseRelayer | None = None
) -> FastAPI:
    """Build the API around a connected :class:`Ledger` and the vault (collaborators come in).

    ``relayer``: the release log's writer when this process records releases (``qcl dev``); by
    default the vault's own (sending with the ledger's relayer account).
    """
    if vault is None:
        from .runtime import open_vault

        vault = open_vault(settings, ledger)
    anchor = CheckpointAnchor(vault, interval=settings.checkpoint_interval, every=settings.checkpoint_every)
    indexer = (
        Indexer(ledger=ledger, store=SqlIndexStore(vault.store), confirmations=settings.index_confirmations)
        if settings.indexer
        else None
    )
    follower = (
        IndexFollower(indexer, interval=settings.index_interval)
        if indexer is not None and settings.index_follow
        else None
    )

    if not settings.relayer:
        vault.use_relayer(None)  # a worker process records the releases; requests wait on the database
    elif relayer is not None:
        vault.use_relayer(relayer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from .heap import settle_heap

        keeper = settle_heap(settings)
        if settings.relayer:
            vault.relayer.start()
            app.state.verifications.start_runner()
            app.state.webhooks.start()
            app.state.clocks.start()
        if settings.checkpoints:
            anchor.start()
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            stoppers: list[Callable[[float], None]] = [anchor.stop, app.state.calls.stop, vault.desk.watcher.stop]
            if settings.relayer:
                stoppers += [
                    vault.relayer.stop,
                    app.state.verifications.stop,
                    app.state.clocks.stop,
                    app.state.webhooks.stop,
                ]
            if follower is not None:
                stoppers.append(follower.stop)
            if keeper is not None:
                stoppers.append(keeper.stop)
            stop_all(stoppers, min(1.0, settings.shutdown_timeout))
            if settings.relayer:
                app.state.webhooks.close(0.0)
            threads.shutdown()

    app = FastAPI(
        title="Quanchenglian ledger API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local files by api/pages.py (no CDN)
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],  # undeclared query parameters: 422 unknown_parameter
    )
    app.state.calls = CallGroups(ledger, vault.store, depth=settings.pipeline_depth)
    app.state.checkpoints = anchor
    app.state.log_tree = LogTree(vault.store)
    app.state.indexer = indexer
    app.state.ledger_view = LedgerView(ledger, vault.store, indexer)
    app.state.verifications = VerificationJobs(store=vault.store)
    if settings.relayer:  # this process does the worker's duties (qcl dev): it runs the jobs too
        app.state.verifications.run = verification_runner(
            ledger=ledger, vault=vault, indexer=indexer, workers=settings.verify_workers
        )
    # the worker's notification duties (SPEC §9.1), run by this process when it is the worker (qcl dev)
    app.state.webhooks = WebhookDeliverer(
        vault.store, poll=settings.webhook_poll, allow_private=settings.webhooks_reach_private
    )
    app.state.clocks = EventClocks(vault.store)
    app.state.settings = settings
    app.state.ledger = ledger
    app.state.vault = vault
    app.state.authenticator = Authenticator(
        store=vault.store, ledger=ledger, settings=settings, secret=jwt_secret(settings)
    )
    app.state.rate_limiter = RateLimiter(settings)
    errors.install(app)
    _document_problems(app)
    for router in _matching_order():
        app.include_router(router)
    pages.install(app)
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        max_depth=settings.max_json_depth,
        max_containers=settings.max_json_containers,
        body_timeout=settings.body_timeout,
        limiter=app.state.rate_limiter,
    )
    restore_recursion_limit(settings.recursion_limit)
    return app


#: The routers as the OpenAPI document lists their operations.
DOCUMENTED = tuple(
    module.router
    for module in (
        system,
        auth,
        members,
        catalog,
        documents,
        grants,
        access_requests,
        releases,
        emergencies,
        audit,
        corrections,
        data_quality,
        demands,
        purposes,
        events,
    )
)
#: Included first: the router tries each route's pattern in turn, so the city-scale paths
#: (``POST /v1/releases``, ``POST /v1/grants``, a grant's status) match after a few tries instead
#: of after some forty. No path of another router matches theirs (tests/api/test_system.py), so
#: the order changes what a request costs, not where it goes.
HOT = (releases.router, grants.router)


def _matching_order() -> list[APIRouter]:
    return [*HOT, *(router for router in DOCUMENTED if router not in HOT)]


def restore_recursion_limit(limit: int) -> None:
    """Undo what importing py_ecc (100,000) and py-evm (12,288) did to the recursion limit.

    Both come in through web3/eth-tester. With the raised limit a deeply nested value makes the
    C JSON parser and other C recursion overflow the thread's stack (a segmentation fault)
    before Python's own guard would raise a RecursionError; with the default it raises.
    """
    if sys.getrecursionlimit() > limit:
        sys.setrecursionlimit(limit)


def _document_problems(app: FastAPI) -> None:
    """Add the RFC 9457 ``ProblemPublic`` schema the routers' error responses refer to, and the
    links between operations (api/openapi_links.py)."""
    from fastapi.openapi.utils import get_openapi

    from .openapi_links import add_links
    from .schemas.system import ProblemPublic

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            rank = {id(router): i for i, router in enumerate(DOCUMENTED)}
            routes = sorted(app.routes, key=lambda route: rank.get(id(getattr(route, "original_router", None)), -1))
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["ProblemPublic"] = ProblemPublic.model_json_schema(ref_template="#/components/schemas/{model}")
            add_links(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
