"""HTTP only: parse, call the service, shape the response."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from ...core.database import SessionDep
from ...shared.pagination import Page
from .models import Item
from .repository import ItemRepository
from .schemas import ItemCreate, ItemQuery, ItemRead, ItemUpdate
from .service import ItemService


def get_item_service(session: SessionDep) -> ItemService:
    return ItemService(ItemRepository(session))


ItemServiceDep = Annotated[ItemService, Depends(get_item_service)]

router = APIRouter(prefix="/api/v1/items", tags=["items"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ItemRead)
async def create_item(data: ItemCreate, service: ItemServiceDep) -> Item:
    return await service.create(data)


@router.get("")
async def list_items(
    query: Annotated[ItemQuery, Query()], service: ItemServiceDep
) -> Page[ItemRead]:
    return await service.list(query)


@router.get("/{item_id}", response_model=ItemRead)
async def get_item(item_id: int, service: ItemServiceDep) -> Item:
    return await service.get(item_id)


@router.patch("/{item_id}", response_model=ItemRead)
async def update_item(item_id: int, data: ItemUpdate, service: ItemServiceDep) -> Item:
    return await service.update(item_id, data)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(item_id: int, service: ItemServiceDep) -> None:
    await service.delete(item_id)
