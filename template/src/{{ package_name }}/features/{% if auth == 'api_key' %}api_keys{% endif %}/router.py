"""HTTP only: parse, call the service, shape the response. Every route needs an admin key."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from ...core.errors import error_responses
from ...shared.fields import ResourceId
from ...shared.pagination import Page
from .dependencies import AdminKey, ApiKeyServiceDep
from .models import ApiKey
from .schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyQuery, ApiKeyRead

router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"], responses=error_responses(403))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    data: ApiKeyCreate, admin: AdminKey, service: ApiKeyServiceDep
) -> ApiKeyCreated:
    """The response is the only time the key is shown; store it now."""
    return await service.create(data)


@router.get("")
async def list_api_keys(
    query: Annotated[ApiKeyQuery, Query()], admin: AdminKey, service: ApiKeyServiceDep
) -> Page[ApiKeyRead]:
    return await service.list(query)


@router.post("/{key_id}/revoke", response_model=ApiKeyRead, responses=error_responses(404))
async def revoke_api_key(key_id: ResourceId, admin: AdminKey, service: ApiKeyServiceDep) -> ApiKey:
    return await service.revoke(key_id)
