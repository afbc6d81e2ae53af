"""Who is calling: the API key from the X-API-Key header, and scope checks."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from ...core.database import SessionDep
from ...core.security import ApiKeyHeaderDep, SettingsDep, record_identity
from .exceptions import MissingScopeError
from .repository import ApiKeyRepository
from .schemas import ADMIN_SCOPE, ApiKeyPrincipal
from .service import ApiKeyService


async def get_api_key_service(session: SessionDep, settings: SettingsDep) -> ApiKeyService:
    return ApiKeyService(ApiKeyRepository(session), settings)


ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]


async def get_current_key(
    request: Request, key: ApiKeyHeaderDep, service: ApiKeyServiceDep
) -> ApiKeyPrincipal:
    # The state keeps the key's hash: the rate limiter, when on, has computed it already.
    principal = await service.authenticate(key, request.scope.setdefault("state", {}))
    # Verified: from now on the rate limiter counts this key's requests against the key.
    record_identity(request, f"key:{principal.key_id or 'bootstrap'}")
    return principal


CurrentKey = Annotated[ApiKeyPrincipal, Depends(get_current_key)]


def require_scopes(*scopes: str) -> Callable[[ApiKeyPrincipal], Awaitable[ApiKeyPrincipal]]:
    """Dependency factory: the key must hold every scope given (the admin scope holds all)."""
    needed = frozenset(scopes)

    async def check_scopes(principal: CurrentKey) -> ApiKeyPrincipal:
        if ADMIN_SCOPE not in principal.scopes and not needed <= principal.scopes:
            raise MissingScopeError(sorted(needed - principal.scopes))
        return principal

    return check_scopes


AdminKey = Annotated[ApiKeyPrincipal, Depends(require_scopes(ADMIN_SCOPE))]
