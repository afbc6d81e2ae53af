"""HTTP only: parse, call the service, shape the response."""

from typing import Annotated

from fastapi import APIRouter, Query

from ...core.errors import error_responses
from ...shared.pagination import Page
from ..auth.dependencies import AdminUser, CurrentUser, UserServiceDep
from .models import User
from .schemas import UserQuery, UserRead

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUser) -> User:
    return user


@router.get("", responses=error_responses(403))
async def list_users(
    query: Annotated[UserQuery, Query()], admin: AdminUser, service: UserServiceDep
) -> Page[UserRead]:
    """Every user, oldest first; admins only."""
    return await service.list(query)
