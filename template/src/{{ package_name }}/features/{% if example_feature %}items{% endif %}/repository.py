from collections.abc import Sequence

from sqlalchemy import select

from ...shared.repository import Repository
from .models import Item
from .schemas import ItemQuery


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ItemRepository(Repository[Item]):
    model = Item

    async def list(self, query: ItemQuery) -> tuple[Sequence[Item], int]:
        statement = select(Item)
        if query.name:
            pattern = f"%{_escape_like(query.name)}%"
            statement = statement.where(Item.name.ilike(pattern, escape="\\"))
        column = getattr(Item, query.sort.lstrip("-"))
        order = column.desc() if query.sort.startswith("-") else column.asc()
        statement = statement.order_by(order, Item.id.asc())
        return await self.paginate(statement, query.offset, query.size)
