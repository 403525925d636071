"""GET /v1/me: who the presented key is, and what it may do, so a console offers only that."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.auth.deps import require
from app.auth.roles import GRANTS, Principal, Role

router = APIRouter(prefix="/v1", tags=["keys"])


class Me(BaseModel):
    key_id: str
    label: str = Field(description="The name every change this key makes is recorded under")
    role: Role
    permissions: list[str] = Field(
        description="The role's permissions, sorted (e.g. act, read, read_warnings)"
    )


@router.get(
    "/me",
    response_model=Me,
    summary="The calling key: id, label, role and permissions",
    description="Any valid key may ask, whatever its role (an ingest key too). A console reads "
    "`permissions` to decide what to offer: without `act` it shows no action at all.",
)
async def me(who: Annotated[Principal, Depends(require(None))]) -> Me:
    permissions = sorted(p.value for p in GRANTS[who.role])
    return Me(key_id=who.key_id, label=who.label, role=who.role, permissions=permissions)
