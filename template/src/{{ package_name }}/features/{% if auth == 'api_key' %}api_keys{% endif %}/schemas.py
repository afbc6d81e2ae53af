from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ...shared.fields import NAME_PATTERN
from ...shared.pagination import PageParams

# The scope that allows everything, key management included.
ADMIN_SCOPE = "admin"

Scope = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$", examples=["items:read"])]


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """The caller: a stored key (id set) or the bootstrap key from settings (id None)."""

    key_id: int | None
    name: str
    scopes: frozenset[str]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    scopes: list[Scope] = Field(min_length=1, max_length=50)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scopes: list[str]
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself: shown only in this response")


class ApiKeyQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
