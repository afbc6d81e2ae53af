from collections.abc import Sequence

from sqlalchemy import select

from ...shared.repository import Repository
from .models import ApiKey
from .schemas import ApiKeyQuery


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        key: ApiKey | None = await self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash)
        )
        return key

    async def list(self, query: ApiKeyQuery) -> tuple[Sequence[ApiKey], int]:
        return await self.paginate(select(ApiKey).order_by(ApiKey.id), query.offset, query.size)
