"""The items feature's per-process client, opened at startup (see core.features)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from ...config import Settings
from ...core.features import Resource, get_feature_settings
from .settings import ItemsSettings
from .webhook import ItemWebhook


@asynccontextmanager
async def open_webhook(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """One HTTP client for the webhook, when ITEMS_WEBHOOK_URL is set; closed at shutdown."""
    own = get_feature_settings(app, ItemsSettings)
    if own.webhook_url is None:
        app.state.items_webhook = None
        yield
        return
    async with httpx.AsyncClient(timeout=own.webhook_timeout) as client:
        app.state.items_webhook = ItemWebhook(client, str(own.webhook_url))
        yield


RESOURCES: list[Resource] = [open_webhook]
