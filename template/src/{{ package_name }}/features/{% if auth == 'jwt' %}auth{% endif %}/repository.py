from datetime import datetime

from sqlalchemy import Update, delete, select, update

from ...shared.repository import Repository
from .models import RefreshToken


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    async def get_for_update(self, jti: str) -> RefreshToken | None:
        """The token's row, locked until the transaction ends (PostgreSQL; SQLite has one
        writer at a time anyway): concurrent refreshes of one token take turns."""
        record: RefreshToken | None = await self.session.scalar(
            select(RefreshToken)
            .where(RefreshToken.jti == jti)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return record

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


def _revoke(family_id: str, now: datetime) -> Update:
    return (
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
