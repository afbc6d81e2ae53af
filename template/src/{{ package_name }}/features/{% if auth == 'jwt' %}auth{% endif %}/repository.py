from datetime import datetime

from sqlalchemy import Update, delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ...shared.repository import Repository
from .models import RefreshToken


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    def __init__(
        self, session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        super().__init__(session)
        self.session_factory = session_factory

    async def mark_rotated(self, jti: str, now: datetime) -> bool:
        """Atomically rotate a live token; False if another request got there first."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.jti == jti,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(rotated_at=now)
            .returning(RefreshToken.jti)
        )
        return result.scalar_one_or_none() is not None

    async def delete_expired(self, user_id: int, before: datetime) -> None:
        await self.session.execute(
            delete(RefreshToken).where(
                RefreshToken.user_id == user_id, RefreshToken.expires_at < before
            )
        )

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        await self.session.execute(_revoke(family_id, now))

    async def revoke_family_now(self, family_id: str, now: datetime) -> None:
        """Revoke in a transaction of its own, so it holds even though the request then fails."""
        async with self.session_factory() as session, session.begin():
            await session.execute(_revoke(family_id, now))


def _revoke(family_id: str, now: datetime) -> Update:
    return (
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
