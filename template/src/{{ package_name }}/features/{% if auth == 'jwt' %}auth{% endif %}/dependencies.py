"""Who is calling: the current user from the bearer token, and role checks."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from ...core.database import SessionDep
from ...core.security import (
    BearerTokenDep,
    NotAuthenticatedError,
    PasswordHasherDep,
    SettingsDep,
    access_claims,
    record_identity,
)
from ..users.exceptions import MissingRoleError
from ..users.models import User
from ..users.repository import UserRepository
from ..users.schemas import Role
from ..users.service import UserService
from .repository import RefreshTokenRepository
from .service import AuthService, current_user


async def get_user_service(session: SessionDep, hasher: PasswordHasherDep) -> UserService:
    return UserService(UserRepository(session), hasher)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


async def get_auth_service(
    session: SessionDep, users: UserServiceDep, hasher: PasswordHasherDep, settings: SettingsDep
) -> AuthService:
    return AuthService(users, RefreshTokenRepository(session), hasher, settings)


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def get_current_user(
    request: Request, token: BearerTokenDep, session: SessionDep, settings: SettingsDep
) -> User:
    # Only what the check needs: every dependency costs each request that uses it.
    if not token:
        raise NotAuthenticatedError()
    # Decoded once per request: the rate limiter, when on, has checked this token already.
    claims = access_claims(request.scope.setdefault("state", {}), token, settings)
    user = await current_user(UserRepository(session), claims)
    record_identity(request, f"user:{user.id}")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """Dependency factory: `Depends(require_roles("admin"))` lets only those roles through."""

    async def check_role(user: CurrentUser) -> User:
        if user.role not in roles:
            raise MissingRoleError(roles)
        return user

    return check_role


AdminUser = Annotated[User, Depends(require_roles("admin"))]
