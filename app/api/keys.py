"""API keys for admins: make one (its token is shown in that answer only), list them, revoke one."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.deps import Now, services
from app.auth.deps import require
from app.auth.keys import LABEL_MAX, KeyNotFound, KeyRecord, KeyState, KeyStore, valid_label
from app.auth.roles import Permission, Principal, Role
from app.services import Services

router = APIRouter(prefix="/v1/keys", tags=["keys"])
Admin = Annotated[Principal, Depends(require(Permission.ADMINISTER))]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    label: str = Field(
        min_length=1,
        max_length=LABEL_MAX,
        description="Who holds the key: recorded as the actor of every change it makes. Printable "
        "characters only (no control, format or line-separator characters), not all blank.",
    )
    expires_days: int | None = Field(
        default=None, ge=1, le=3650, description="Days until the key stops working; none: never."
    )

    @field_validator("label")
    @classmethod
    def _printable(cls, v: str) -> str:
        if not valid_label(v):
            raise ValueError("must be printable characters, not all blank, with no control characters")
        return v


class KeyOut(BaseModel):
    id: str
    label: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    state: KeyState

    @classmethod
    def of(cls, record: KeyRecord, at: datetime) -> KeyOut:
        return cls(**asdict(record), state=record.state(at))


class KeyCreated(KeyOut):
    token: str = Field(description="The key to send as `Authorization: Bearer <token>`. Shown only here.")


def _keys(svc: Annotated[Services, Depends(services)]) -> KeyStore:
    return KeyStore(svc.engine)


Keys = Annotated[KeyStore, Depends(_keys)]


@router.post("", status_code=201, response_model=KeyCreated)
def create_key(body: KeyIn, admin: Admin, keys: Keys, at: Now) -> KeyCreated:
    expires = timedelta(days=body.expires_days) if body.expires_days else None
    record, token = keys.create(
        body.role, body.label, expires=expires, created_by=f"{admin.label} ({admin.key_id})", now=at
    )
    return KeyCreated(**KeyOut.of(record, at).model_dump(), token=token)


@router.get("", response_model=list[KeyOut], dependencies=[Depends(require(Permission.ADMINISTER))])
def list_keys(keys: Keys, at: Now) -> list[KeyOut]:
    """Every key, revoked and expired ones too; never a secret or its hash."""
    return [KeyOut.of(r, at) for r in keys.list()]


@router.delete(
    "/{key_id}",
    response_model=KeyOut,
    responses={404: {"description": "No key has this id."}},
    dependencies=[Depends(require(Permission.ADMINISTER))],
)
def revoke_key(key_id: Annotated[str, Path(max_length=32)], keys: Keys, at: Now) -> KeyOut:
    """Revoke a key at once. Idempotent: revoking a revoked key changes nothing and answers 200 with the
    time it was first revoked."""
    try:
        return KeyOut.of(keys.revoke(key_id, at=at), at)
    except KeyNotFound:
        raise HTTPException(404, detail=f"no key {key_id}") from None
