"""Rules for users; raises domain errors, never HTTP ones."""

from ...core.security import PasswordHasher
from ...shared.pagination import Page
from ...shared.repository import DuplicateError
from .exceptions import EmailTakenError
from .models import User
from .repository import UserRepository
from .schemas import Role, UserCreate, UserQuery, UserRead


class UserService:
    def __init__(self, repository: UserRepository, hasher: PasswordHasher) -> None:
        self.repository = repository
        self.hasher = hasher

    async def create(self, data: UserCreate, role: Role = "user") -> User:
        password_hash = await self.hasher.hash(data.password)
        user = User(email=data.email, password_hash=password_hash, role=role)
        try:
            return await self.repository.add(user)
        except DuplicateError as exc:
            raise EmailTakenError() from exc

    async def get(self, user_id: int) -> User | None:
        return await self.repository.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        if "\x00" in email:  # no address has one, and PostgreSQL cannot compare it
            return None
        return await self.repository.get_by_email(email)

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        await self.repository.update(user, {"password_hash": password_hash})

    async def list(self, query: UserQuery) -> Page[UserRead]:
        users, total = await self.repository.list(query)
        return Page.build([UserRead.model_validate(user) for user in users], total, query)
