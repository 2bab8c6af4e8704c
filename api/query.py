"""Query parameters an operation does not declare are refused (422 ``unknown_parameter``), as
unknown fields of a JSON body are (``extra="forbid"``): a misspelt filter (``?subjcet=0x…``) must
not silently widen a list or a report to everything the caller may see."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from .errors import Problem

_DECLARED: dict[int, frozenset[str]] = {}


def declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameter names ``route`` declares, its dependencies' included."""
    names = _DECLARED.get(id(route))
    if names is None:
        names = _DECLARED[id(route)] = frozenset(_query_names(route.dependant))
    return names


def _query_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    for param in dependant.query_params:
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):  # a query parameter model: its fields
            names.update(f.alias or n for n, f in model.model_fields.items())
        else:
            names.add(param.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    if not request.scope.get("query_string"):  # most requests: nothing to parse
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    unknown = sorted(set(request.query_params.keys()) - declared_query(route))
    if unknown:
        raise Problem(
            422,
            "unknown_parameter",
            f"unknown query parameter(s): {', '.join(unknown)[:200]}",
            errors=[{"loc": ["query", name], "msg": "not a parameter of this operation"} for name in unknown[:20]],
        )
