"""Dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chain_client import Ledger, Member, Role
from vault import Vault

from .auth import Authenticator
from .errors import Problem
from .services.ledger_view import LedgerView
from .settings import Settings


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


async def get_view(request: Request) -> LedgerView:
    view: LedgerView = request.app.state.ledger_view
    return view


async def get_authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


#: ``Authorization: Bearer <token>`` (declared as the OpenAPI security scheme of every route that
#: needs a login; a missing or non-bearer header is this project's 401 ``not_authenticated``).
bearer = HTTPBearer(auto_error=False, description="the access token of POST /v1/auth/token (SPEC §5)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _authorization(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return f"Bearer {credentials.credentials}" if credentials is not None else None


# The dependencies are coroutines: FastAPI runs a plain ``def`` dependency on a worker thread, a hop
# that costs more CPU than these take (they read app.state; a member's record comes from a cache).


def _authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


async def current_member(request: Request, credentials: Credentials) -> Member:
    """The logged-in member (401 without a valid token; 403 when suspended or not a member)."""
    return await _authenticator(request).authenticate_async(_authorization(credentials))


async def withdrawing_member(request: Request, credentials: Credentials) -> Member:
    """As :func:`current_member`, but a suspended SUBJECT passes too: for the routes that revoke,
    pause and read its own data (SPEC §9.8 "Withdrawal always works"). Such a member's roles are
    returned unchanged; the route must only let it act on what is its own."""
    return await _authenticator(request).authenticate_async(_authorization(credentials), withdrawal=True)


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VaultDep = Annotated[Vault, Depends(get_vault)]
ViewDep = Annotated[LedgerView, Depends(get_view)]
AuthDep = Annotated[Authenticator, Depends(get_authenticator)]
CurrentMember = Annotated[Member, Depends(current_member)]
WithdrawingMember = Annotated[Member, Depends(withdrawing_member)]


def require(*roles: Role) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Member]]:
    """A dependency: the logged-in member (as :func:`current_member`) must hold at least one of
    ``roles`` (403 role_required). It logs the member in itself rather than depending on
    :func:`current_member`: one dependency fewer to resolve on every request of such a route."""
    names = " or ".join(r.name or "" for r in roles)

    async def check(request: Request, credentials: Credentials) -> Member:
        member = await _authenticator(request).authenticate_async(_authorization(credentials))
        if not any(role in member.roles for role in roles):
            raise Problem(403, "role_required", f"this needs the {names} role")
        return member

    return check


AdminMember = Annotated[Member, Depends(require(Role.ADMIN))]
AuditorMember = Annotated[Member, Depends(require(Role.AUDITOR))]
ConsumerMember = Annotated[Member, Depends(require(Role.CONSUMER))]
