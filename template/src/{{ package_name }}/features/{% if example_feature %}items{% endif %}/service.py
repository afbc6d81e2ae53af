"""Rules for items; raises domain errors, never HTTP ones."""

from ...shared.pagination import Page
from ...shared.repository import DuplicateError
from .exceptions import ItemNameTakenError, ItemNotFoundError
from .models import Item
from .repository import ItemRepository
from .schemas import ItemCreate, ItemQuery, ItemRead, ItemUpdate


class ItemService:
    def __init__(self, repository: ItemRepository) -> None:
        self.repository = repository

    async def create(self, data: ItemCreate) -> Item:
        try:
            return await self.repository.add(Item(**data.model_dump()))
        except DuplicateError as exc:
            raise ItemNameTakenError(data.name) from exc

    async def get(self, item_id: int) -> Item:
        item = await self.repository.get(item_id)
        if item is None:
            raise ItemNotFoundError(item_id)
        return item

    async def list(self, query: ItemQuery) -> Page[ItemRead]:
        items, total = await self.repository.list(query)
        return Page.build([ItemRead.model_validate(item) for item in items], total, query)

    async def update(self, item_id: int, data: ItemUpdate) -> Item:
        item = await self.get(item_id)
        changes = data.model_dump(exclude_unset=True)
        try:
            return await self.repository.update(item, changes)
        except DuplicateError as exc:
            raise ItemNameTakenError(changes["name"]) from exc

    async def delete(self, item_id: int) -> None:
        await self.repository.delete(await self.get(item_id))
