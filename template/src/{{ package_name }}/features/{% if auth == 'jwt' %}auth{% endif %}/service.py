"""Registration, login, refresh rotation with reuse detection, logout."""

from datetime import UTC, datetime

import structlog

from ...config import Settings
from ...core.security import (
    LEEWAY,
    InvalidTokenError,
    PasswordHasher,
    TokenClaims,
    create_token,
    decode_token,
)
from ..users.models import User
from ..users.repository import UserRepository
from ..users.schemas import UserCreate
from ..users.service import UserService
from .exceptions import InvalidCredentialsError, RefreshTokenReusedError, RefreshTokenRevokedError
from .models import RefreshToken
from .repository import RefreshTokenRepository
from .schemas import TokenPair

log = structlog.get_logger(__name__)


class AuthService:
    def __init__(
        self,
        users: UserService,
        tokens: RefreshTokenRepository,
        hasher: PasswordHasher,
        settings: Settings,
    ) -> None:
        self.users = users
        self.tokens = tokens
        self.hasher = hasher
        self.settings = settings

    async def register(self, data: UserCreate) -> User:
        return await self.users.create(data)

    async def login(self, email: str, password: str) -> TokenPair:
        user = await self.users.get_by_email(email.strip().lower())
        matches, new_hash = await self.hasher.verify(password, user.password_hash if user else None)
        if user is None or not matches:
            raise InvalidCredentialsError()
        if new_hash is not None:
            await self.users.set_password_hash(user, new_hash)
        return await self._issue(user.id, family_id=None)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate in the request's one transaction, the token's row locked: of concurrent
        refreshes of one token one wins, the others see it rotated. Reuse revokes the family
        in the same transaction, which commits though the request fails
        (RefreshTokenReusedError keeps its writes); no second connection, so nothing can wait
        on a lock its own request holds."""
        claims = decode_token(refresh_token, self.settings, "refresh")
        record = await self.tokens.get_for_update(claims.token_id)
        if record is None:
            raise InvalidTokenError()
        now = datetime.now(UTC)
        if record.revoked_at is not None:
            raise RefreshTokenRevokedError()
        # The conditional update is the guard where the lock is not (SQLite reads unlocked).
        if record.rotated_at is not None or not await self.tokens.mark_rotated(record.jti, now):
            await self.tokens.revoke_family(record.family_id, now)
            log.warning("refresh_token_reused", user_id=record.user_id, family=record.family_id)
            raise RefreshTokenReusedError()
        return await self._issue(record.user_id, family_id=record.family_id)

    async def logout(self, refresh_token: str) -> None:
        claims = decode_token(refresh_token, self.settings, "refresh")
        record = await self._stored(claims.token_id)
        await self.tokens.revoke_family(record.family_id, datetime.now(UTC))

    async def _stored(self, jti: str) -> RefreshToken:
        record = await self.tokens.get(jti)
        if record is None:
            raise InvalidTokenError()
        return record

    async def _issue(self, user_id: int, family_id: str | None) -> TokenPair:
        subject = str(user_id)
        access_token, _ = create_token(self.settings, subject, "access")
        refresh_token, claims = create_token(self.settings, subject, "refresh")
        # An expired token is refused before its row is read, so the row serves nothing.
        # Dropping the user's at each login and refresh keeps the table to live tokens.
        await self.tokens.delete_expired(user_id, datetime.now(UTC) - LEEWAY)
        await self.tokens.add(
            RefreshToken(
                jti=claims.token_id,
                family_id=family_id or claims.token_id,
                user_id=user_id,
                expires_at=claims.expires_at,
            )
        )
        return TokenPair(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=self.settings.access_token_minutes * 60,
        )


async def current_user(users: UserRepository, claims: TokenClaims) -> User:
    """The user of a verified access token's claims (see core.security.access_claims)."""
    user = await users.get(int(claims.subject))
    if user is None:
        raise InvalidTokenError("The token's user no longer exists.")
    return user
