from collections.abc import Sequence

from sqlalchemy import select

from ...shared.repository import Repository
from .models import User
from .schemas import UserQuery


class UserRepository(Repository[User]):
    model = User

    async def get_by_email(self, email: str) -> User | None:
        user: User | None = await self.session.scalar(select(User).where(User.email == email))
        return user

    async def list(self, query: UserQuery) -> tuple[Sequence[User], int]:
        return await self.paginate(select(User).order_by(User.id), query.offset, query.size)
