"""The items feature's own settings, ITEMS_* in the environment (see core.features)."""

from typing import Annotated

from pydantic import AnyHttpUrl, BeforeValidator, Field
from pydantic_settings import SettingsConfigDict

from ...core.features import FeatureSettings


def _empty_is_none(value: object) -> object:
    return value or None


class ItemsSettings(FeatureSettings):
    model_config = SettingsConfigDict(env_prefix="ITEMS_")

    # Where each new item is POSTed as {"event": "item.created", "item": {...}}; empty: nowhere.
    webhook_url: Annotated[AnyHttpUrl | None, BeforeValidator(_empty_is_none)] = None
    # Seconds a create request waits for the webhook at most; a failure is logged, not raised.
    webhook_timeout: float = Field(default=2.0, gt=0, le=30)
