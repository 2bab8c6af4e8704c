"""The ASGI application of a `qcl serve` process (uvicorn imports it, once per worker process).

Each process connects to the chain named by ``QCL_CHAIN`` (a URL), reuses the deployment manifest,
and serves the API without any background loop: the release relayer, the indexer follower and
checkpoint anchoring run in ``qcl worker``. Release requests wait on the database for the worker's
outcome, so any number of these processes can run side by side.
"""

from __future__ import annotations

from fastapi import FastAPI

from .app import create_app
from .runtime import bootstrap, open_node, open_vault
from .settings import Settings


def serve_app() -> FastAPI:
    """A stateless API process (uvicorn ``factory=True``)."""
    settings = Settings(relayer=False, checkpoints=False, index_follow=False)
    node = open_node(settings)
    ledger = bootstrap(settings, node)
    return create_app(settings, ledger=ledger, vault=open_vault(settings, ledger))
