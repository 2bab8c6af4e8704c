"""Purposes of use (SPEC §9.3): a readable code, Chinese and English names and the legal basis,
so that people never have to read the keccak256 hash a grant signs."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from chain_client.ids import purpose_id
from db import paging
from db.models import PurposeRow

from ..deps import AdminMember, CurrentMember, VaultDep
from ..errors import Problem
from ..schemas.page import Page
from ..types import Limit, Offset
from .access_requests import PURPOSE_PATTERN
from .common import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/purposes", tags=["purposes"], responses=PROBLEM_RESPONSES)


class PurposeCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "housing-provident-fund-withdrawal",
                    "name_zh": "住房公积金提取",
                    "name_en": "Housing provident fund withdrawal",
                    "legal_basis": "《住房公积金管理条例》第二十四条",
                }
            ]
        },
    )
    code: str = Field(pattern=PURPOSE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    legal_basis: str = Field(min_length=1, max_length=2000)


class PurposePublic(BaseModel):
    code: str
    purpose: str = Field(description="keccak256(utf8(code)), what a grant signs")
    name_zh: str
    name_en: str
    legal_basis: str
    created_at: int


def _public(row: PurposeRow) -> PurposePublic:
    return PurposePublic(
        code=row.code,
        purpose=row.purpose_id,
        name_zh=row.name_zh,
        name_en=row.name_en,
        legal_basis=row.legal_basis,
        created_at=row.created_at,
    )


@router.post("", response_model=PurposePublic, status_code=201)
def create(body: PurposeCreate, admin: AdminMember, vault: VaultDep) -> PurposePublic:
    """An ADMIN registers a purpose (409 ``purpose_exists`` for a code already registered)."""
    row = PurposeRow(
        code=body.code,
        purpose_id="0x" + purpose_id(body.code).hex(),
        name_zh=body.name_zh,
        name_en=body.name_en,
        legal_basis=body.legal_basis,
        created_at=int(time.time()),
        created_by=admin.address,
    )
    try:
        with vault.store.session() as s:
            s.add(row)
    except IntegrityError:
        raise Problem(409, "purpose_exists", f"purpose {body.code!r} is already registered") from None
    return _public(row)


@router.get("", response_model=Page[PurposePublic])
def list_purposes(
    _member: CurrentMember,
    vault: VaultDep,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[PurposePublic]:
    """Every registered purpose (any member), by code."""
    with vault.store.session() as s:
        rows, total = paging.page(s, PurposeRow, order_by=(PurposeRow.code,), offset=offset, limit=limit)
    return Page[PurposePublic](items=[_public(r) for r in rows], offset=offset, limit=limit, total=total)
