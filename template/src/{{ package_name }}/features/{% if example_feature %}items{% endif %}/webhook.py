"""Tells another service about each new item, when ITEMS_WEBHOOK_URL is set."""

from typing import Annotated

import httpx
import structlog
from fastapi import Depends, Request

from .schemas import ItemRead

log = structlog.get_logger(__name__)


class ItemWebhook:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        # Logged instead of the URL, which may carry credentials.
        self.host = httpx.URL(url).host

    async def item_created(self, item: ItemRead) -> None:
        """Best effort: the item is committed already, so a failure is logged, not raised."""
        body = {"event": "item.created", "item": item.model_dump(mode="json")}
        try:
            response = await self.client.post(self.url, json=body)
            response.raise_for_status()
        except httpx.HTTPStatusError as error:
            log.warning("item_webhook_failed", host=self.host, status=error.response.status_code)
        except httpx.HTTPError as error:
            log.warning("item_webhook_failed", host=self.host, error=type(error).__name__)


async def get_webhook(request: Request) -> ItemWebhook | None:
    webhook: ItemWebhook | None = request.app.state.items_webhook
    return webhook


WebhookDep = Annotated[ItemWebhook | None, Depends(get_webhook)]
