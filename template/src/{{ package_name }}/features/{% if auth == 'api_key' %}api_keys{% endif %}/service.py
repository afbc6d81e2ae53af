"""Rules for API keys; raises domain errors, never HTTP ones."""

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from ...config import Settings
from ...core.security import (
    generate_api_key,
    hash_api_key,
    is_bootstrap_key,
    request_key_hash,
)
from ...shared.pagination import Page
from .exceptions import ApiKeyNotFoundError, InvalidApiKeyError, MissingApiKeyError
from .models import ApiKey
from .repository import ApiKeyRepository
from .schemas import (
    ADMIN_SCOPE,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPrincipal,
    ApiKeyQuery,
    ApiKeyRead,
)

# last_used_at is written at most this often per key, not on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


class ApiKeyService:
    def __init__(self, repository: ApiKeyRepository, settings: Settings) -> None:
        self.repository = repository
        self.settings = settings

    async def authenticate(
        self, key: str | None, state: dict[str, Any] | None = None
    ) -> ApiKeyPrincipal:
        """The key's principal; `state`, the request's scope state, keeps the key's hash."""
        if not key:
            raise MissingApiKeyError()
        key_hash = request_key_hash({} if state is None else state, key, self.settings)
        if is_bootstrap_key(key_hash, self.settings):
            return ApiKeyPrincipal(None, "bootstrap", frozenset({ADMIN_SCOPE}))
        record = await self.repository.get_by_hash(key_hash)
        if record is None or not hmac.compare_digest(record.key_hash, key_hash):
            raise InvalidApiKeyError()
        now = datetime.now(UTC)
        if record.revoked:
            raise InvalidApiKeyError("The API key was revoked.")
        if record.expires_at is not None and record.expires_at <= now:
            raise InvalidApiKeyError("The API key has expired.")
        if record.last_used_at is None or now - record.last_used_at >= LAST_USED_PRECISION:
            await self.repository.update(record, {"last_used_at": now})
        return ApiKeyPrincipal(record.id, record.name, frozenset(record.scopes))

    async def create(self, data: ApiKeyCreate) -> ApiKeyCreated:
        key = generate_api_key()
        expires_at = None
        if data.expires_in_days is not None:
            expires_at = datetime.now(UTC) + timedelta(days=data.expires_in_days)
        record = await self.repository.add(
            ApiKey(
                name=data.name,
                key_hash=hash_api_key(key, self.settings),
                scopes=sorted(set(data.scopes)),
                expires_at=expires_at,
                revoked=False,
            )
        )
        return ApiKeyCreated(**ApiKeyRead.model_validate(record).model_dump(), key=key)

    async def list(self, query: ApiKeyQuery) -> Page[ApiKeyRead]:
        keys, total = await self.repository.list(query)
        return Page.build([ApiKeyRead.model_validate(key) for key in keys], total, query)

    async def revoke(self, key_id: int) -> ApiKey:
        record = await self.repository.get(key_id)
        if record is None:
            raise ApiKeyNotFoundError(key_id)
        return await self.repository.update(record, {"revoked": True})
