"""HTTP only: parse, call the service, shape the response."""

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from ...core.errors import error_responses
from ..users.models import User
from ..users.schemas import UserCreate, UserRead
from .dependencies import AuthServiceDep
from .schemas import RefreshRequest, TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=error_responses(409),
)
async def register(data: UserCreate, service: AuthServiceDep) -> User:
    return await service.register(data)


@router.post("/login", responses=error_responses(401))
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], service: AuthServiceDep
) -> TokenPair:
    """OAuth2 password flow (form-encoded): `username` is the e-mail address."""
    return await service.login(form.username, form.password)


@router.post("/refresh", responses=error_responses(401))
async def refresh(data: RefreshRequest, service: AuthServiceDep) -> TokenPair:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    return await service.refresh(data.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
async def logout(data: RefreshRequest, service: AuthServiceDep) -> None:
    """Revoke the refresh token and every token rotated from the same login."""
    await service.logout(data.refresh_token)
